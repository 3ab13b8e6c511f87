"""The shipped separator's speed under each inference setting that trades nothing or little: precision x chunk length.

    python bench/bench_inference_speed.py [--precision fp32 int8] [--chunk-frames 2600 1300 650] [--threads 1 2]
        [--name inference_speed]

Times `Separator.pretrained(device="cpu", precision=P, chunk_frames=C)` on bench_denoise.py's 30 s track
(median of 5 after a warm-up) for every combination, in this process, one after another; run it on an idle
machine. Shorter chunks let the BLSTM run several rows of one track as a batch (a whole 30 s chunk is one
sequence, whose recurrence a second thread barely shares); what they cost in quality is measured apart, with
`bench/bench_separators.py --validation --override chunk_frames=C precision=P`. Writes
bench/results/<name>.json.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import write_result  # noqa: E402
from bench_denoise import real_time  # noqa: E402

from danet_music2vec.separation import Separator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", nargs="+", default=["fp32", "int8"], choices=["fp32", "bf16", "int8"])
    parser.add_argument("--chunk-frames", type=int, nargs="+", default=[2600, 1300, 650])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--name", default="inference_speed", help="bench/results/<name>.json")
    args = parser.parse_args()
    runs = []
    for precision, chunk in itertools.product(args.precision, args.chunk_frames):
        separator = Separator.pretrained(device="cpu", precision=precision, chunk_frames=chunk)
        for threads in args.threads:
            run = {"precision": precision, "chunk_frames": chunk} | real_time(separator, threads)
            print(run, flush=True)
            runs.append(run)
    write_result(args.name, {"benchmark": "inference speed of the shipped separator (30 s track)",
                             "architecture": separator.model.architecture, "runs": runs})


if __name__ == "__main__":
    main()
