"""The ablation: from "as the original work" to the current defaults, one fix at a time.

    python scripts/ablation.py run [--noises 1 2] [--rows 0 3 ...] [--variants 0 2 ...] [--force]
    python scripts/ablation.py report            # writes docs/RESULTS.md and docs/results/*.png

``run`` executes one ``dvc exp run --temp -n abl-<row>-n<noises>`` per row and noise count
(and ``abl-var-<variant>-n<noises>`` per variant); DVC's run cache restores every stage whose
inputs a previous row already produced, so only what a fix touches is recomputed. Every
experiment logs to the repository's MLflow store under its name; one already recorded is
skipped unless ``--force``, and a rerun deletes its old MLflow runs first. ``report`` reads
those recorded metrics (the sweep stage's numbers at each input SNR) and writes the tables
and figures; it never runs anything, so it can be rerun at will. A row not run yet shows as "-".

Row 0 sets every original choice (danet_music2vec.experiments.variants.ABLATION_FIXES);
row k undoes the first k of them; the last row is params.yaml as committed (what
``make repro`` runs), except that the ablation sweeps only the input SNRs of ABLATION_SNRS.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from danet_music2vec.experiments.reports import write_results
from danet_music2vec.experiments.runner import run_ablation
from danet_music2vec.experiments.variants import ABLATION_VARIANTS, NOISES, ablation_rows

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    rows = len(ablation_rows())
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the ablation experiments (dvc exp run --temp, one per row and noises)")
    run_p.add_argument("--noises", type=int, nargs="+", default=list(NOISES), choices=NOISES)
    run_p.add_argument("--rows", type=int, nargs="*", default=list(range(rows)))
    run_p.add_argument("--variants", type=int, nargs="*", default=list(range(len(ABLATION_VARIANTS))),
                       choices=range(len(ABLATION_VARIANTS)))  # fmt: skip
    run_p.add_argument("--force", action="store_true", help="rerun experiments already recorded in MLflow (their old runs are deleted first)")
    rep = sub.add_parser("report", help="write docs/RESULTS.md from the recorded metrics")
    rep.add_argument("--out", type=Path, default=REPO / "docs" / "RESULTS.md")
    args = parser.parse_args()
    if args.command == "run":
        bad = [r for r in args.rows if not 0 <= r < rows]
        if bad:
            parser.error(f"--rows {bad}: rows are 0 .. {rows - 1}")
        run_ablation(args.rows, args.variants, args.noises, args.force, REPO)
    else:
        write_results(args.out, REPO)


if __name__ == "__main__":
    main()
