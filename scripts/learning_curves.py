"""docs/LEARNING_CURVES.md and docs/learning_curves.png: the separator's validation quality against training budget.

    python scripts/learning_curves.py [--repo .] [--work pretrained-run] [--variants default noise-pool ...]

Reads the separator comparison's saved experiments (seed 0 of each variant, run by
`python scripts/compare_separators.py run --seeds 0 --variants ...` in --repo) and the long run of
`python scripts/train_pretrained.py train` (its work folder); runs nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from danet_music2vec.experiments.curves import experiment_curves, work_folder_curve, write_learning_curves
from danet_music2vec.pretrained import RECIPE

REPO = Path(__file__).resolve().parents[1]
CURVE_VARIANTS = ["no-pools", "noise-pool", "music-pool", "both-pools", "both-pools-by-category", "width-300", "rate-16k"]
# The curves ran while the sample's training split alone was the default recipe, so it was saved as `default`.
SAVED_AS = {"no-pools": "default"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=REPO, help="where the experiments are saved (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=REPO / "pretrained-run", help="the long run's work folder")
    parser.add_argument("--variants", nargs="+", default=CURVE_VARIANTS)
    parser.add_argument("--intro", type=Path, help="a markdown file to put above the table")
    args = parser.parse_args()
    curves = experiment_curves(args.variants, args.repo, saved_as=SAVED_AS)
    if (args.work / "plots" / "separator_loss.csv").is_file():
        what = "the shipped separator's run: " + ", ".join(f"`{k}: {v}`" for k, v in RECIPE.items())
        curves.append(work_folder_curve("shipped (long run)", what, args.work))
    intro = args.intro.read_text() if args.intro else ""
    write_learning_curves(curves, REPO / "docs" / "LEARNING_CURVES.md", REPO / "docs" / "learning_curves.png", intro)


if __name__ == "__main__":
    main()
