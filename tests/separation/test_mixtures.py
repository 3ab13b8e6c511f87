"""The separate stage's work on the test mixtures: the same files from any number of processes, kept for a rerun."""

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from danet_music2vec import checkpoints
from danet_music2vec.separation import Separator
from danet_music2vec.separation.mixtures import (
    FILES,
    separate_mixtures,
    separated_results,
)
from tests.conftest import separate_params, write_audio
from tests.factories import separator_file


def _mixtures(tmp_path: Path, count: int) -> pd.DataFrame:
    rate, rng = 8000, np.random.default_rng(0)
    rows = []
    for i in range(count):
        music = write_audio(tmp_path / "raw" / f"m{i}.wav", (0.2 * rng.standard_normal(rate)).astype(np.float32), rate)
        noise = write_audio(tmp_path / "raw" / f"n{i}.wav", (0.2 * rng.standard_normal(rate)).astype(np.float32), rate)
        rows.append(dict(mixture_id=f"test-{i:05d}", split="test", music_clip=f"m{i}", label="rock", music_path=str(music),
                         music_offset=0, noise_clips=[f"n{i}"], noise_paths=[str(noise)], noise_offsets=[0], noise_gains=[1.0],
                         snr_db=0.0, num_samples=rate, sample_rate=rate))  # fmt: skip
    return pd.DataFrame(rows)


def test_separated_mixtures_are_kept_and_taken_back_only_with_their_files(tmp_path: Path) -> None:
    separator = Separator.from_network(checkpoints.load(separator_file(tmp_path / "sep.pt"), "separator"),
                                       separate_params(output_rate="stft", device="cpu"))  # fmt: skip
    test = _mixtures(tmp_path, 3)
    finished = separated_results(tmp_path / "kept")
    first = separate_mixtures(test, separator, "settings", finished, progress=False)
    assert list(first["mixture_id"]) == list(test["mixture_id"]) and finished.reused == 0
    audio = {row.mixture_id: [sf.read(Path(row.folder, name))[0] for name in FILES] for row in first.itertuples()}
    assert all(len(music) == 8000 for music, _ in audio.values())

    for i in (0, 2):  # mixtures whose files did not all survive: separated again
        Path(first["folder"].iloc[i], "noise.flac").unlink()
    again = separated_results(tmp_path / "kept")
    second = separate_mixtures(test, separator, "settings", again, workers=2, progress=False)
    assert again.reused == 1
    assert second.drop(columns="processing_s").equals(first.drop(columns="processing_s"))
    for row in second.itertuples():  # recomputed in worker processes: the same samples
        for name, expected in zip(FILES, audio[row.mixture_id]):
            np.testing.assert_array_equal(sf.read(Path(row.folder, name))[0], expected)

    other = separated_results(tmp_path / "kept")
    separate_mixtures(test.iloc[:1], separator, "other settings", other, progress=False)
    assert other.reused == 0  # another separator's results are never taken
