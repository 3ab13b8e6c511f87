"""The separate stage's work: every test mixture rendered and separated, in ``workers`` processes, each kept on disk.

Each separated mixture's files are written under its item key (:func:`~danet_music2vec.workers.item_key`)
in the stage's resume folder, so a killed stage, a stage stopped half-way or the shards of a
Kubeflow run (:mod:`~danet_music2vec.shards`) leave results the next run takes instead of
separating again; a result is only taken when both of its files are there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from danet_music2vec.audio import save_audio
from danet_music2vec.data.mixing import render_mixture
from danet_music2vec.separation.separator import Separator, timed_separate
from danet_music2vec.workers import Finished, item_key, map_items

FILES = ("music.flac", "noise.flac")


def separated_results(folder: str | os.PathLike[str]) -> Finished:
    """Where the separate stage keeps each separated mixture: its files in ``folder/<key>/`` and its row as JSON."""

    def decode(row: dict[str, Any]) -> dict[str, Any]:
        if not all(Path(row["folder"], name).is_file() for name in FILES):
            raise KeyError(row["folder"])  # a folder removed or never finished: separated again
        return row

    return Finished(folder, dict, decode)


def separate_mixtures(
    test: pd.DataFrame,
    separator: Separator,
    settings: str,
    finished: Finished,
    workers: int = 1,
    progress: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Separate every row of ``test`` (data/mixtures.parquet rows) and return one row per mixture, in order.

    Each row holds ``mixture_id``, ``folder`` (where ``music.flac`` and ``noise.flac`` are, inside
    ``finished``'s folder), ``sample_rate`` (of the files), ``seconds`` (of the mixture), ``processing_s`` (the
    separator's wall time on one thread), ``swapped``/``decisions`` (DANet's source order) and ``clipped``
    (samples clipped when the files were written). ``settings`` identifies the separator (its file's hash and
    inference settings) in the item keys.
    """
    rows = [row for _, row in test.iterrows()]
    keys = [item_key(settings, row.to_dict(), [row.music_path, *row.noise_paths]) for row in rows]
    items = [(row, str(finished.folder / key)) for row, key in zip(rows, keys)]
    results = map_items(_separate_mixture, separator, items, workers, "separate", progress, finished, keys, on_progress)
    return pd.DataFrame(results, columns=["mixture_id", "folder", "sample_rate", "seconds", "processing_s", "swapped",
                                          "decisions", "clipped"])  # fmt: skip


def _separate_mixture(separator: Separator, item: tuple[pd.Series, str]) -> dict[str, Any]:
    """One test mixture separated and its two files written to ``folder`` (``separate_mixtures``' work item)."""
    row, folder = item
    rate = int(row.sample_rate)
    rendered = render_mixture(row)
    result, seconds = timed_separate(separator, rendered.mixture, rate)
    out_rate = separator.output_sample_rate(rate)
    clipped = sum(save_audio(Path(folder, name), audio, out_rate) for name, audio in zip(FILES, (result.music, result.noise)))
    return {"mixture_id": row.mixture_id, "folder": folder, "sample_rate": out_rate, "seconds": row.num_samples / rate,
            "processing_s": seconds, "swapped": int(result.order.swaps), "decisions": int(result.order.decisions),
            "clipped": int(clipped)}  # fmt: skip
