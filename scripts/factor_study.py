"""The factor study (docs/FACTORS.md): the plain recipe against the shipped one, one factor at a time.

    python scripts/factor_study.py run --work WORK [--recipes ...] [--seeds 0 1 2] [--minutes 3]
    python scripts/factor_study.py test --work WORK     # each run's GNSDR on WORK's test mixtures (reported only)
    python scripts/factor_study.py report [--out bench/results/factors] [--minutes 3]   # the table of docs/FACTORS.md

WORK is a clone of this repository whose `dvc repro features mix` ran with both pools
(data.separation_music_dirs: [data/extra-music], data.separation_noise_dirs: [data/extra-noise]).
Each recipe trains for the same wall time on one thread; results (per-mixture CSVs, one JSON a run)
go to --out, and a finished run is not repeated (danet_music2vec.experiments.factors).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd
import torch

from danet_music2vec.experiments.factors import FACTORS, factor_report, run_factor, test_gnsdr
from danet_music2vec.features import FeatureStore
from danet_music2vec.params import load_params, read_params_yaml

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("run", "test", "report"))
    parser.add_argument("--work", type=Path, help="the clone with the features of both pools (run)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "factors")
    parser.add_argument("--recipes", nargs="+", default=list(FACTORS), choices=list(FACTORS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--minutes", type=float, default=3.0, help="training wall time of every run")
    args = parser.parse_args()
    if args.command == "run":
        torch.set_num_threads(1)
        store = FeatureStore(args.work / "data" / "features")
        base = read_params_yaml(args.work / "params.yaml")
        for seed in args.seeds:
            for name in args.recipes:
                print(run_factor(store, base, name, seed, args.minutes, args.out), flush=True)
    elif args.command == "test":  # each finished run's GNSDR on the work clone's test mixtures (reported, never chosen on)
        torch.set_num_threads(1)
        mixtures = pd.read_parquet(args.work / "data" / "mixtures.parquet").query("split == 'test'")
        settings = load_params(REPO / "params.yaml").separate
        os.chdir(args.work)  # the mixtures name their audio relative to the clone
        for folder in sorted(p.parent for p in args.out.resolve().glob("*/result.json")):
            print(folder.name, test_gnsdr(folder, mixtures, settings), flush=True)
    else:
        print(factor_report(args.out, args.minutes))


if __name__ == "__main__":
    main()
