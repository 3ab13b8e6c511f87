"""The shipped separator's scores for its model card: the pipeline in four conditions, shipped against from scratch.

Each (start, noises, SNR) is one ``dvc exp run --temp -n card-<start>-n<noises>-snr<SNR> ... score``:
``separator.start`` ``shipped`` (the packaged separator, as the pipeline uses it), ``scratch``
(today's recipe trained on the profile) or ``finetune`` (:data:`STARTS`), ``noises`` 1 or 2 and ``mix.snr_db`` 0 or -5, on
the profile's test mixtures. DVC's run cache restores what another condition already computed (the
from-scratch separator does not depend on ``mix``). :func:`card_table` reads the saved experiments back.
"""

from __future__ import annotations

from pathlib import Path

from danet_music2vec.experiments.records import saved_experiments, workspace_code
from danet_music2vec.experiments.runner import run_experiments
from danet_music2vec.pretrained import RECIPE

FINETUNE_KEYS = ("separator.architecture", "separator.loss", "separator.batch_size", "separator.train_snr_db")
CONDITIONS = ((1, 0.0), (2, 0.0), (1, -5.0), (2, -5.0))  # (noises, input SNR in dB)
# Each start's overrides and the conditions it runs in: fine-tuning (10 epochs of the profile's training split,
# about 5 minutes on 2 cores: what fits in `make repro`) is measured in the first condition only.
STARTS = {
    "shipped": ({"separator.start": "shipped"}, CONDITIONS),
    "scratch": ({"separator.start": "scratch"}, CONDITIONS),
    # The shipped network's own STFT and training objective (its recipe), trained further on the profile.
    "finetune": ({"separator.start": "finetune", "separator.epochs": 10, "separator.budget_minutes": None}
                 | {k: v for k, v in RECIPE.items() if k.startswith("stft.") or k in FINETUNE_KEYS}, CONDITIONS[:1]),
}
COLUMNS = [("separation.gnsdr", "GNSDR"), ("separation.oracle_irm.gnsdr", "oracle IRM"),
           ("separation.full_band.gnsdr", "GNSDR full band"), ("classification.clean.f1", "F1 clean"),
           ("classification.mixture.f1", "F1 mixture"), ("classification.separated.f1", "F1 separated")]  # fmt: skip


def card_name(start: str, noises: int, snr: float) -> str:
    """The experiment name of ``start`` at ``noises`` and ``snr`` dB, e.g. ``card-shipped-n2-snrm5``."""
    return f"card-{start}-n{noises}-snr{'m' if snr < 0 else ''}{abs(snr):g}"


def run_card(repo: Path, force: bool = False, starts: list[str] | None = None) -> None:
    """Every start of ``starts`` (default: all) in its conditions, up to the score stage (skipping those saved on this code)."""
    todo = [(card_name(start, n, snr), overrides | {"noises": n, "mix.snr_db": snr})
            for start, (overrides, conditions) in STARTS.items() if starts is None or start in starts
            for n, snr in conditions]  # fmt: skip
    code = workspace_code(repo)
    done = {name for (c, name) in saved_experiments([name for name, _ in todo], repo) if c == code}
    run_experiments(todo, done, force, repo, targets=["score"], recorded="already saved as a DVC experiment of this code")


def card_table(repo: Path) -> str:
    """The markdown table of the saved card experiments (the newest code's), one row per start and condition."""
    names = [card_name(s, n, snr) for s, (_, conditions) in STARTS.items() for n, snr in conditions]
    found = saved_experiments(names, repo)
    newest = next(iter(dict.fromkeys(code for code, _ in found)), None)
    saved = {name: exp for (code, name), exp in found.items() if code == newest}
    lines = ["| separator | noises | input SNR | " + " | ".join(title for _, title in COLUMNS) + " | / oracle |\n",
             "|---" * (len(COLUMNS) + 4) + "|\n"]  # fmt: skip
    for n, snr in CONDITIONS:
        for start in (s for s, (_, conditions) in STARTS.items() if (n, snr) in conditions):
            exp = saved.get(card_name(start, n, snr))
            if exp is None:
                lines.append(f"| {start} | {n} | {snr:g} dB | " + " | ".join("-" for _ in COLUMNS) + " | - |\n")
                continue
            values = [exp.score.get(key) for key, _ in COLUMNS]
            ratio = exp.score["separation.gnsdr"] / exp.score["separation.oracle_irm.gnsdr"]
            lines.append(f"| {start} | {n} | {snr:g} dB | " + " | ".join("-" if v is None else f"{v:.2f}" for v in values)
                         + f" | {ratio:.2f} |\n")  # fmt: skip
    return "".join(lines)
