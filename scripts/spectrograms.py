"""The full-band figure of docs/MODEL_CARD.md: a real song with a broadband noise, before and after each separator.

    python scripts/spectrograms.py [--music data/sample/music/...] [--noise data/sample/noise/...] [--snr 0]
        [--separator NAME=PATH ...] [-o docs/fullband_spectrograms.png]

The music and the noise are a test clip and a test noise of the sample (shown, never trained on or tuned to),
mixed at --snr dB over the first 10 s at 22.05 kHz, the noise looped. Each --separator (default: the shipped one)
separates the mixture with `Separator.separate` at the file's rate, as `dm2v denoise` does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from danet_music2vec.audio import load_audio
from danet_music2vec.data.mixing import tile
from danet_music2vec.plots import plot_spectrograms
from danet_music2vec.separation import Separator

REPO = Path(__file__).resolve().parents[1]
RATE = 22050


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--music", type=Path, default=REPO / "data/sample/music/rock/sect_metal_madness_0.ogg")
    parser.add_argument("--noise", type=Path, default=REPO / "data/sample/noise/1-56311-A-10.flac")
    parser.add_argument("--snr", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--separator", nargs="*", default=[], help="NAME=PATH of a separator file (default: the shipped one)")
    parser.add_argument("-o", "--out", type=Path, default=REPO / "docs" / "fullband_spectrograms.png")
    args = parser.parse_args()
    music = load_audio(args.music, RATE)[: int(args.seconds * RATE)]
    noise = tile(load_audio(args.noise, RATE), 0, music.shape[0])
    gain = np.sqrt(np.mean(music**2) / (np.mean(noise**2) * 10 ** (args.snr / 10)))
    mixture = (music + gain * noise).astype(np.float32)
    separators = [item.split("=", 1) for item in args.separator] or [["shipped", None]]
    panels = [(f"mixture: {args.music.stem} + {args.noise.stem} at {args.snr:g} dB", mixture, RATE)]
    for name, path in separators:
        separator = Separator.pretrained() if path is None else Separator.load(path)
        rate = separator.cfg.sample_rate
        panels.append((f"{name}: separated (model at {rate / 1000:g} kHz)", separator.separate(mixture, RATE).music, RATE))
    panels.append(("clean music", music, RATE))
    plot_spectrograms(panels, args.out)
    print(args.out)


if __name__ == "__main__":
    main()
