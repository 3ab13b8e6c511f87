"""Train the separator shipped with the package, and package it (docs/MODEL_CARD.md).

    python scripts/train_pretrained.py train [--work pretrained-run]   # hours on 2 cores; rerun to resume
    python scripts/train_pretrained.py package [--work pretrained-run] [--fp32]
    python scripts/train_pretrained.py evaluate      # the model card's conditions: dvc exp run per start x condition
    python scripts/train_pretrained.py card          # their scores, as the table of docs/MODEL_CARD.md

``train`` clones this repository's HEAD into the work folder, writes the recipe
(danet_music2vec.pretrained.RECIPE) into its params.yaml and runs `dvc repro train_separator`
there: the pipeline's own download, split, features and train_separator stages on the sample
profile's training split plus data/extra-music and data/extra-noise. Interrupted, the same
command continues from the last finished epoch. ``package`` writes
src/danet_music2vec/pretrained/separator.pt (half precision unless --fp32) and
docs/pretrained_manifest.csv (every training clip with its sha256). ``evaluate`` runs the pipeline
up to `score` with the shipped and the from-scratch separator, 1 and 2 noises, 0 and -5 dB
(danet_music2vec.experiments.card); ``card`` prints their table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from danet_music2vec.experiments.card import STARTS, card_table, run_card
from danet_music2vec.pretrained.packaging import package
from danet_music2vec.pretrained.training import prepare, train

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("train", "package", "evaluate", "card"))
    parser.add_argument("--work", type=Path, default=REPO / "pretrained-run", help="the training clone (default: %(default)s)")
    parser.add_argument("--fp32", action="store_true", help="package the weights in full precision")
    parser.add_argument("--starts", nargs="+", choices=list(STARTS), help="evaluate: only these starts (default: all)")
    args = parser.parse_args()
    if args.command == "train":
        print(f"{args.work}: commit {prepare(REPO, args.work)}")
        train(args.work)
    elif args.command == "evaluate":
        run_card(REPO, starts=args.starts)
    elif args.command == "card":
        print(card_table(REPO))
    else:
        card = package(args.work, manifest_csv=REPO / "docs" / "pretrained_manifest.csv", half=not args.fp32)
        print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
