"""The shipped separator as a user meets it: a 30 s track's real-time factor, and a 10-minute stereo file's peak memory.

    python bench/bench_denoise.py        (needs no pipeline run; writes bench/results/denoise.json)

30 s track: a real music clip of data/sample looped with a real ESC-50 clip at 0 dB, mono at
22.05 kHz, separated by `Separator.pretrained()` on the CPU with 1 and 2 threads (median of 5
runs after a warm-up). Long file: 10 minutes of real sample music and noise, stereo (the two
channels from different clips), 44.1 kHz, 16-bit WAV, denoised by `dm2v denoise` in a child
process whose peak resident memory (ru_maxrss) and wall time are reported.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import write_result  # noqa: E402

from danet_music2vec.data.mixing import looped_mixture  # noqa: E402
from danet_music2vec.separation import Separator  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MUSIC = sorted((REPO / "data" / "sample" / "music").rglob("*.ogg"))
NOISE = sorted((REPO / "data" / "sample" / "noise").glob("*.flac"))
SECONDS = 30.0
LONG_SECONDS = 600.0
REPEATS = 5


def real_time(separator: Separator, threads: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    rate = 22050
    wave = looped_mixture(MUSIC[0], NOISE[0], rate, SECONDS)
    separator.separate(wave, rate)  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        separator.separate(wave, rate)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"threads": threads, "seconds": median, "x_real_time": SECONDS / median}


def long_stereo(folder: Path) -> dict[str, float]:
    rate = 44100
    path = folder / "long.wav"
    channels = [looped_mixture(MUSIC[i], NOISE[i], rate, LONG_SECONDS) for i in (1, 2)]
    sf.write(path, 0.5 * np.stack(channels, axis=1), rate, subtype="PCM_16")
    del channels
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "danet_music2vec.cli", "denoise", str(path), "-o", str(folder / "clean.wav")],
                   check=True)  # fmt: skip
    seconds = time.perf_counter() - start
    info = sf.info(folder / "clean.wav")
    return {"audio_seconds": LONG_SECONDS, "rate": rate, "channels_out": info.channels, "rate_out": info.samplerate,
            "wall_seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}  # fmt: skip


def main() -> None:
    separator = Separator.pretrained(device="cpu")
    runs = [real_time(separator, threads) for threads in (1, 2)]
    with tempfile.TemporaryDirectory() as tmp:
        long = long_stereo(Path(tmp))
    write_result("denoise", {"benchmark": "denoise (shipped separator)", "track_seconds": SECONDS,
                             "card": separator_card(), "runs": runs, "long_stereo_file": long})  # fmt: skip


def separator_card() -> dict:
    from danet_music2vec import checkpoints
    from danet_music2vec.pretrained import SHIPPED

    return checkpoints.load(SHIPPED, "separator")["card"]


if __name__ == "__main__":
    main()
