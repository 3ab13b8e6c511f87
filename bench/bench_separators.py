"""Separator files side by side on the pipeline's test mixtures: GNSDR at 8 kHz (the paper) and at full band.

    python bench/bench_separators.py [--validation] --separator shipped=src/danet_music2vec/pretrained/separator.pt \
        old=/path/to/old.pt [--snr 0] [--override chunk_frames=400] [--precisions bf16 int8] [--name separators]

Run in a workspace whose `dvc repro mix` ran (data/mixtures.parquet and the audio it names). Every test mixture
is rendered (at --snr dB when given, else at the manifest's gains), separated with `Separator.separate` at its own
rate as `dm2v denoise` does, and scored with BSS Eval as the score stage does: at 8 kHz (output and sources
resampled) and at the mixture's full rate. Paired differences against the first separator come with 95% intervals
resampled by test clip. --precisions also scores each separator at each of those precisions (NAME-P: the same file
with ``separate.precision: P``; bf16 autocast, or int8 dynamic quantization of its network), paired with the first
separator as every other. Writes bench/results/<name>.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import write_result  # noqa: E402

from danet_music2vec.audio import load_audio, resample  # noqa: E402
from danet_music2vec.data.mixing import Rendered, render_mixture, tile  # noqa: E402
from danet_music2vec.dynamic_mixing import split_groups  # noqa: E402
from danet_music2vec.metrics import global_scores, paired_difference, separation_scores  # noqa: E402
from danet_music2vec.params import parse_assignments  # noqa: E402
from danet_music2vec.separation import Separator  # noqa: E402

LOW_RATE = 8000
RATE = 22050  # data/raw's rate


@dataclass(frozen=True)
class Item:
    """One mixture to score: its id, its music clip (the bootstrap's cluster), its sources and rate."""

    mixture_id: str
    music_clip: str
    rendered: Rendered
    sample_rate: int


def test_items(snr: float | None) -> list[Item]:
    """The test mixtures of data/mixtures.parquet (at ``snr`` dB when given)."""
    test = pd.read_parquet("data/mixtures.parquet").query("split == 'test'")
    return [Item(row.mixture_id, row.music_clip, render_mixture(row, snr_db=snr), int(row.sample_rate)) for row in test.itertuples()]


def validation_items(snr: float, val_fraction: float, seed: int, seconds: float = 12.0) -> list[Item]:
    """Every held-out validation track of the profile's training split with every held-out noise recording
    (:func:`~danet_music2vec.dynamic_mixing.split_groups`, as training holds them out), the first ``seconds`` at
    ``snr`` dB, the noise looped: what no separator trained with that validation seed (``separator.val_seed``, else
    ``seed``) and ``val_fraction`` has heard."""
    splits = pd.read_parquet("data/splits.parquet").query("split == 'train'")
    held = {kind: split_groups(splits.loc[splits["kind"] == kind, "group"], val_fraction, seed)[1] for kind in ("music", "noise")}
    pick = {kind: splits[(splits["kind"] == kind) & splits["group"].isin(held[kind])] for kind in held}
    noises = pick["noise"].drop_duplicates("group")  # one take per recording
    items = []
    for m in pick["music"].itertuples():
        music = load_audio(m.path, RATE)[: int(seconds * RATE)]
        for n in noises.itertuples():
            noise = tile(load_audio(n.path, RATE, check_silence=False), 0, music.shape[0])
            gain = np.sqrt(np.mean(music**2) / max(np.mean(noise**2), 1e-12) / 10 ** (snr / 10))
            noise = (gain * noise).astype(np.float32)
            items.append(Item(f"{m.clip_id}+{n.clip_id}", m.clip_id, Rendered(music, noise, music + noise), RATE))
    return items


def score(separator: Separator, items: list[Item]) -> tuple[pd.DataFrame, float]:
    rows, seconds = [], 0.0
    for row in items:
        r = row.rendered
        rate = row.sample_rate
        start = time.perf_counter()
        out = separator.separate(r.mixture, rate)
        seconds += time.perf_counter() - start
        music = resample(out.music, separator.output_sample_rate(rate), rate)[: len(r.music)]
        noise = r.mixture[: len(music)] - music
        full = separation_scores(np.stack([r.music, r.noise]), np.stack([music, noise]), r.mixture)
        low = [resample(x, rate, LOW_RATE) for x in (r.music, r.noise, r.mixture, music, noise)]
        n = min(len(x) for x in low)
        eight = separation_scores(np.stack([low[0][:n], low[1][:n]]), np.stack([low[3][:n], low[4][:n]]), low[2][:n])
        rows.append({"mixture_id": row.mixture_id, "clip": row.music_clip, "length": full.length,
                     "nsdr_8k": eight.nsdr_music, "nsdr_full": full.nsdr_music, "eight": eight, "full": full,
                     "audio_seconds": len(r.mixture) / rate})  # fmt: skip
    table = pd.DataFrame(rows)
    return table, float(table["audio_seconds"].sum() / seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--separator", nargs="+", required=True, help="NAME=PATH of a separator file; the first is the reference")
    parser.add_argument("--snr", type=float, default=None, help="re-mix every test mixture at this SNR (dB)")
    parser.add_argument("--override", nargs="*", default=[], help="inference settings for every separator, KEY=YAML")
    parser.add_argument("--name", default="separators")
    parser.add_argument("--validation", action="store_true",
                        help="score on the profile's held-out validation tracks x noise recordings instead (12 s, 0 dB or --snr)")
    parser.add_argument("--val-fraction", type=float, default=0.15, help="--validation: separator.val_fraction of the runs")
    parser.add_argument("--seed", type=int, default=0, help="--validation: separator.val_seed of the runs (else their separator.seed)")
    parser.add_argument("--precisions", nargs="*", default=[], choices=["fp32", "bf16", "int8"],
                        help="also score every separator at these precisions (NAME-P)")
    args = parser.parse_args()
    overrides = parse_assignments(args.override)
    if args.validation:
        items = validation_items(0.0 if args.snr is None else args.snr, args.val_fraction, args.seed)
    else:
        items = test_items(args.snr)
    tables, result = {}, {}
    named = [item.split("=", 1) for item in args.separator]
    separators = [(name, path, Separator.load(path, device="cpu", **overrides)) for name, path in named]
    separators += [(f"{name}-{precision}", path, Separator.load(path, **(overrides | {"device": "cpu", "precision": precision})))
                   for precision in args.precisions for name, path in named]  # fmt: skip
    for name, path, separator in separators:
        table, x_real_time = score(separator, items)
        tables[name] = table
        result[name] = {"path": path, "model_rate": separator.cfg.sample_rate, "x_real_time": x_real_time,
                        "gnsdr_8k": global_scores(list(table["eight"]))["gnsdr"],
                        "gnsdr_full_band": global_scores(list(table["full"]))["gnsdr"]}  # fmt: skip
        print(name, result[name], flush=True)
    reference = next(iter(tables))
    for name, table in tables.items():
        if name == reference:
            continue
        for key in ("nsdr_8k", "nsdr_full"):
            diff, lo, hi = paired_difference(table[key], tables[reference][key], weights=table["length"],
                                             groups=list(table["clip"]))  # fmt: skip
            result[name][f"{key}_vs_{reference}"] = {"mean": diff, "ci95": [lo, hi]}
    what = "the profile's held-out validation tracks and noise recordings" if args.validation else "the test mixtures"
    write_result(args.name, {"benchmark": f"separator files on {what}", "mixtures": len(items), "snr_db": args.snr,
                             "overrides": overrides, "precisions": args.precisions, "separators": result})  # fmt: skip


if __name__ == "__main__":
    main()
