"""Half against full precision weights for the shipped separator: GNSDR on the pipeline's test mixtures.

    python bench/bench_precision.py --work pretrained-run   (after `dvc repro mix`; writes bench/results/precision.json)

Packages the trained separator of the work folder twice (fp16 and fp32 weights,
danet_music2vec.pretrained.packaging), separates every test mixture of data/mixtures.parquet with
each (at the 8 kHz working rate) and scores both with BSS Eval as the score stage does: GNSDR, the
largest per-mixture NSDR difference and the file sizes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import write_result  # noqa: E402

from danet_music2vec.audio import resample  # noqa: E402
from danet_music2vec.data.mixing import render_mixture  # noqa: E402
from danet_music2vec.metrics import global_scores, separation_scores  # noqa: E402
from danet_music2vec.pretrained.packaging import package  # noqa: E402
from danet_music2vec.separation import Separator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="the training work folder of scripts/train_pretrained.py")
    args = parser.parse_args()
    test = pd.read_parquet("data/mixtures.parquet").query("split == 'test'")
    result: dict[str, dict] = {}
    nsdr: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision, half in (("fp16", True), ("fp32", False)):
            path = Path(tmp) / f"{precision}.pt"
            package(args.work, path, half=half)
            separator = Separator.load(path, device="cpu", output_rate="stft")
            rate = separator.cfg.sample_rate
            scores = []
            for row in test.itertuples():
                r = render_mixture(row)
                low = [resample(x, int(row.sample_rate), rate) for x in (r.music, r.noise, r.mixture)]
                out = separator.separate(r.mixture, int(row.sample_rate))
                n = min(len(low[0]), len(out.music))
                scores.append(separation_scores(np.stack([low[0][:n], low[1][:n]]),
                                                np.stack([out.music[:n], out.noise[:n]]), low[2][:n]))  # fmt: skip
            nsdr[precision] = np.array([s.nsdr_music for s in scores])
            result[precision] = {"gnsdr": global_scores(scores)["gnsdr"], "megabytes": path.stat().st_size / 1e6}
    diff = nsdr["fp16"] - nsdr["fp32"]
    write_result("precision", {"benchmark": "half precision weights", "mixtures": len(test), **result,
                               "max_abs_nsdr_difference_db": float(np.nanmax(np.abs(diff)))})  # fmt: skip


if __name__ == "__main__":
    main()
