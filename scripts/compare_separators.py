"""Separators compared with enough power to tell: several training seeds, paired per-mixture intervals.

    python scripts/compare_separators.py run [--variants default mask-network ...] [--seeds 0 1 2] [--noises 2]
    python scripts/compare_separators.py report      # writes docs/SEPARATORS.md

``run`` executes ``dvc exp run --temp -n sep-<variant>-s<seed> -S separator.seed=<seed> ... score``
per recipe of danet_music2vec.experiments.variants.SEPARATOR_VARIANTS and seed (the pipeline
up to the score stage; DVC's run cache restores what another experiment already computed, e.g.
the trained model of a recipe that only changes inference). Experiments already saved on this
code (a DVC experiment ref of that name) are skipped unless ``--force``, so an interrupted run
resumes; every experiment also logs to MLflow as usual, and a rerun deletes its old MLflow runs
first. ``report`` reads each experiment's per-mixture scores from its git ref and gives, per
recipe, GNSDR per seed and the paired difference to its reference recipe with a bootstrap 95%
interval over the test music clips (danet_music2vec.experiments.reports).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from danet_music2vec.experiments.reports import write_separators
from danet_music2vec.experiments.runner import run_separators
from danet_music2vec.experiments.variants import NOISES, RUNNABLE_SEPARATORS, SEEDS

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="train and score each variant with each seed (dvc exp run --temp ... score)")
    run_p.add_argument("--variants", nargs="+", default=RUNNABLE_SEPARATORS, choices=RUNNABLE_SEPARATORS)
    run_p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    run_p.add_argument("--noises", type=int, default=1, choices=NOISES, help="environmental sounds per test mixture")
    run_p.add_argument("--force", action="store_true", help="rerun experiments already saved (their old MLflow runs are deleted first)")
    rep = sub.add_parser("report", help="write docs/SEPARATORS.md from the recorded experiments")
    rep.add_argument("--out", type=Path, default=REPO / "docs" / "SEPARATORS.md")
    args = parser.parse_args()
    if args.command == "run":
        run_separators(args.variants, args.seeds, args.force, REPO, args.noises)
    else:
        write_separators(args.out, REPO)


if __name__ == "__main__":
    main()
