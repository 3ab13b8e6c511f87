"""The ablation: from "as the original work" to the current defaults, one fix at a time.

    python scripts/ablation.py run [--noises 1 2] [--rows 0 3 ...] [--force]
    python scripts/ablation.py report            # writes docs/RESULTS.md and docs/results/*.png

``run`` executes one ``dvc exp run --temp -n abl-<row>-n<noises>`` per row and noise count;
DVC's run cache restores every stage whose inputs a previous row already produced, so
only what a fix touches is recomputed. Every experiment logs to the repository's MLflow
store under its name. ``report`` reads those recorded metrics (the sweep stage's numbers
at each input SNR on the parent runs) and writes the tables and figures; it never runs
anything, so it can be rerun at will. A row not run yet shows as "-".

Row 0 sets every original choice below; row k undoes the first k of them; the last row is
params.yaml as committed (what ``make repro`` runs), except that the ablation sweeps only
the input SNRs of :data:`SNRS`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from danet_music2vec.atomic import atomic_path  # noqa: E402
from danet_music2vec.evaluation import snr_key  # noqa: E402
from danet_music2vec.plots import plot_ablation  # noqa: E402
from danet_music2vec.tracking import delete_pipeline_runs, pipeline_metrics  # noqa: E402

# (row name, the fix, the original work's settings that the fix replaces), in the order applied.
FIXES: list[tuple[str, str, dict[str, Any]]] = [
    ("si-sdr-loss", "SI-SDR loss through the inverse STFT (the original: log-magnitude MSE; the paper: linear)",
     {"danet.loss": "log_mse"}),
    ("threshold", "40 dB energy threshold for attractors and k-means", {"danet.threshold_db": None}),
    ("order-fix", "k-means seeded and matched to the training attractors",
     {"separate.resolve_order": False, "separate.kmeans_init": "farthest"}),
    ("overlap", "25% overlapping chunks, masks overlap-added", {"separate.overlap": 0.0}),
    ("mask-network", "a plain mask network instead of DANet's attractors and k-means, trained as long (30 epochs: "
     "DANet's 15 took the same time)",
     {"danet.objective": "attractor", "danet.kmeans_epochs": 3, "separate.masks": "attractors", "danet.epochs": 15}),
    ("snr-mixing", "SNR-controlled mixing (0 dB) + dynamic mixing at -10..15 dB in training",
     {"mix.snr_db": None, "danet.train_snr_db": None}),
    ("full-rate", "masks applied at the full 22.05 kHz rate", {"separate.output_rate": "stft"}),
    ("clf-bandlimit", "classifier trained with gain and 4 kHz band-limit augmentation",
     {"music2vec.augment_gain_db": None, "music2vec.augment_lowpass_hz": []}),
]  # fmt: skip
# Levers measured beside the defaults and not adopted: (name, what, overrides). The levers measured while
# DANet + head was the default carry it explicitly, so their records keep meaning what was run.
DANET_HEAD = {"danet.objective": "chimera", "danet.epochs": 15}
VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("danet-head", "DANet with a mask-inference head (Chimera++) instead of the mask network, 15 epochs (the same "
     "training time; the default before)", DANET_HEAD),
    ("clf-noise", "DANet + head, classifier trained with residual-noise augmentation (p 0.5, -5..20 dB)",
     DANET_HEAD | {"music2vec.augment_noise_prob": 0.5}),
    ("mask-floor", "DANet + head, music mask floored at 0.1 (fewer artifacts, more residual noise)",
     DANET_HEAD | {"separate.mask_floor": 0.1}),
]  # fmt: skip
SNRS = [-5.0, 0.0]  # input SNRs of the ablation (the targets' two)
NOISES = (1, 2)
COLUMNS = [  # (metrics key after snr_<x>., column title)
    ("separation.gnsdr", "GNSDR"), ("separation.gsir", "GSIR"), ("separation.gsar", "GSAR"),
    ("classification.clean.accuracy", "acc clean"), ("classification.mixture.accuracy", "acc mix"),
    ("classification.separated.accuracy", "acc sep"), ("classification.clean.f1", "F1 clean"),
    ("classification.mixture.f1", "F1 mix"), ("classification.separated.f1", "F1 sep"),
]  # fmt: skip


def rows() -> list[tuple[str, str, dict[str, Any]]]:
    """``(name, description, overrides)`` per row: row k keeps the original settings of fixes k+1 .. n."""
    out = []
    for k in range(len(FIXES) + 1):
        overrides: dict[str, Any] = {}
        for _, _, original in FIXES[k:]:
            overrides |= original
        name, description = ("original", "as the original work") if k == 0 else (FIXES[k - 1][0], "+ " + FIXES[k - 1][1])
        out.append((name, description, overrides))
    return out


def exp_name(row: int, noises: int) -> str:
    return f"abl-{row:02d}-{rows()[row][0]}-n{noises}"


def variant_name(variant: int, noises: int) -> str:
    return f"abl-var-{VARIANTS[variant][0]}-n{noises}"


def _yaml(value: Any) -> str:
    """``value`` as one line of YAML (how ``dvc exp run -S`` parses it: null, [] and [-5, 0] keep their types)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def set_args(overrides: dict[str, Any]) -> list[str]:
    return [arg for key, value in overrides.items() for arg in ("-S", f"{key}={_yaml(value)}")]


def run(selected: list[int], variants: list[int], noises: list[int], force: bool) -> None:
    todo = [(exp_name(r, n), n, rows()[r][2]) for n in noises for r in selected]
    todo += [(variant_name(v, n), n, VARIANTS[v][2]) for n in noises for v in variants]
    done = pipeline_metrics([name for name, _, _ in todo], REPO)
    for name, n, overrides in todo:
        if not force and f"{snr_key(SNRS[0])}.separation.gnsdr" in done.get(name, {}):
            print(f"{name}: already recorded in MLflow (use --force to rerun)")
            continue
        if name in done:  # recorded before (perhaps with other defaults): the rerun starts a clean record
            delete_pipeline_runs([name], REPO)
        cmd = ["dvc", "exp", "run", "--temp", "-n", name, "-S", f"noises={n}"]
        cmd += set_args(overrides | {"sweep.snr_db": SNRS})
        print("$", " ".join(cmd), flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, env=os.environ | {"DVC_NO_ANALYTICS": "1"})
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)


def _fmt(value: float | None, digits: int = 2) -> str:
    # NaN: pandas' None in a float column (a row not run beside rows that were).
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def ablation_table(
    metrics: dict[str, dict[str, float]], noises: int, snr: float, variants: bool = False
) -> pd.DataFrame:
    """One row per ablation row (or per variant) at one noise count and input SNR (None where not recorded)."""
    table = []
    entries = VARIANTS if variants else rows()
    for r, (name, description, _) in enumerate(entries):
        found = metrics.get(variant_name(r, noises) if variants else exp_name(r, noises), {})
        values = {t: found.get(f"{snr_key(snr)}.{k}") for k, t in COLUMNS}
        # What separation adds for this row's classifier: separated minus mixture F1.
        gain = None if None in (values["F1 sep"], values["F1 mix"]) else values["F1 sep"] - values["F1 mix"]
        table.append({"row": r, "variant": description} | values | {"F1 sep - mix": gain})
    return pd.DataFrame(table)


def _markdown(table: pd.DataFrame) -> str:
    head = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns) + "\n"
    body = ""
    for record in table.to_dict("records"):
        cells = [_fmt(v) if isinstance(v, float) or v is None else str(v) for v in record.values()]
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def target_lines(found: dict[str, float], snr: float, noises: int) -> str:
    """The issue's targets for the final row at one condition, with verdicts."""
    key = snr_key(snr)
    get = lambda k: found.get(f"{key}.{k}")  # noqa: E731
    clean, mix, sep = (get(f"classification.{i}.f1") for i in ("clean", "mixture", "separated"))
    lo, hi = get("classification.separated.f1_ci_low"), get("classification.separated.f1_ci_high")
    gnsdr, oracle, gate = get("separation.gnsdr"), get("separation.oracle_irm.gnsdr"), get("separation.baseline.gnsdr")
    if None in (clean, mix, sep, gnsdr, oracle, gate):
        return f"| {noises} | {snr:g} dB | not recorded |||||\n"
    ratio = sep / clean if clean else float("nan")
    # Separated music classified at least as well as the mixture, and within 5% of clean where the mixture is below it.
    f1_ok = sep >= mix and (mix >= clean or ratio >= 0.95)
    share = gnsdr / oracle
    gnsdr_verdict = "not met" if share < 0.5 or gnsdr <= gate else "met (stretch too)" if share >= 0.8 else "met"
    return (
        f"| {noises} | {snr:g} dB | {clean:.2f} / {mix:.2f} / {sep:.2f} [{_fmt(lo)}, {_fmt(hi)}] | {sep - mix:+.2f} | "
        f"{ratio:.2f} | {'met' if f1_ok else 'not met'} | {gnsdr:.2f} / {oracle:.2f} = {share:.2f} | "
        f"{gate:.2f} | {gnsdr_verdict} |\n"
    )


def report(out: Path) -> None:
    names = [exp_name(r, n) for n in NOISES for r in range(len(rows()))]
    names += [variant_name(v, n) for n in NOISES for v in range(len(VARIANTS))]
    # An experiment counts once its sweep finished (an interrupted one has a parent run without it).
    recorded = pipeline_metrics(names, REPO, stages=("sweep",))
    metrics = {k: v for k, v in recorded.items() if f"{snr_key(SNRS[0])}.separation.gnsdr" in v}
    figures = out.parent / "results"
    final = len(rows()) - 1
    text = [
        "# Results: the ablation\n\n",
        f"Generated by `python scripts/ablation.py report` from the metrics recorded in MLflow ({len(metrics)} of "
        f"{len(names)} experiments recorded; a `-` is an experiment not run yet). The experiments are run by "
        "`python scripts/ablation.py run`: one `dvc exp run` per row and noise count, on the sample profile "
        "(9 test clips, 4 genres). Every number is from the sweep stage, which re-mixes the same test "
        "mixtures (the first `sweep.mixtures_per_clip` = 2 of each clip's 12 s test mixtures: 18) at each input SNR, "
        "so all rows are scored on identical mixtures. Weighted F1 intervals are bootstrap 95% intervals that resample "
        "the test clips (the mixtures of one clip move together).\n\n",
        "## Targets (last row = current defaults)\n\n",
        "| noises | input SNR | F1 clean / mixture / separated [95% CI] | sep - mix (>= 0) | sep / clean (>= 0.95 where "
        "mix < clean) | F1 target | GNSDR separator / oracle IRM (>= 0.5, stretch 0.8) | GNSDR spectral gate "
        "| GNSDR target |\n"
        "|---|---|---|---|---|---|---|---|---|\n",
    ]
    for n in NOISES:
        for snr in sorted(SNRS, reverse=True):
            text.append(target_lines(metrics.get(exp_name(final, n), {}), snr, n))
    text.append(
        "\n## One fix at a time\n\nRow 0 is the original work's recipe; each row adds one fix to the row above. "
        f"Rows 1-{final - 1} change the separation, row {final} the classifier: the `F1 mix` column shows what a more robust "
        "classifier gains without any separation, `F1 sep - mix` what separation adds on top of that classifier.\n\n"
    )
    for r, (name, description, overrides) in enumerate(rows()):
        undone = ", ".join(f"`{k}={_yaml(v)}`" for k, v in overrides.items()) or "none (params.yaml defaults)"
        text.append(f"{r}. **{name}** {description}. Original settings still in place: {undone}.\n")
    for n in NOISES:
        tables = {snr: ablation_table(metrics, n, snr) for snr in sorted(SNRS, reverse=True)}
        for snr, table in tables.items():
            text.append(f"\n### {n} noise{'s' if n > 1 else ''}, input SNR {snr:g} dB\n\n")
            text.append(_markdown(table))
        path = figures / f"ablation_n{n}.png"
        plot_ablation({f"{snr:g} dB": tables[snr] for snr in SNRS}, f"{n} noise(s)", path)
        text.append(f"\n![ablation, {n} noise(s)](results/{path.name})\n")
    text.append(
        "\n## Levers measured beside the defaults, not adopted\n\nEach variant is the last row with the changes its "
        "description names; row 0 of each table is the first variant. `danet-head` puts DANet + head back in place "
        "of the mask network; the other levers were measured while DANet + head was the default, so they compare "
        "with `danet-head`.\n"
    )
    for n in NOISES:
        for snr in sorted(SNRS, reverse=True):
            text.append(f"\n### {n} noise{'s' if n > 1 else ''}, input SNR {snr:g} dB\n\n")
            text.append(_markdown(ablation_table(metrics, n, snr, variants=True)))
    text.append(
        "\n## Curves of the default pipeline (`make repro`, 1 noise)\n\n"
        "GNSDR and weighted F1 against the input SNR, and DANet's GNSDR per noise category, from "
        "`plots/snr_gnsdr.csv`, `plots/snr_f1.csv` and `plots/gnsdr_by_noise.csv` (`dvc plots show` draws them too).\n\n"
    )
    for name in ("snr_curves.png", "gnsdr_by_noise.png"):
        source = REPO / "plots" / name
        if source.is_file():
            with atomic_path(figures / name) as tmp:
                tmp.write_bytes(source.read_bytes())
            text.append(f"![{name}](results/{name})\n\n")
    for name in ("snr_gnsdr.csv", "snr_f1.csv"):
        source = REPO / "plots" / name
        if source.is_file():
            text.append(_markdown(pd.read_csv(source)) + "\n")
    text.append(_separators_section(out.parent / "SEPARATORS.md"))
    with atomic_path(out) as tmp:
        tmp.write_text("".join(text))
    print(f"wrote {out} ({len(metrics)} of {len(names)} experiments recorded)")


def _separators_section(path: Path) -> str:
    """The separator comparison (seeds, paired intervals) that ``compare_separators.py report`` wrote, one level down."""
    if not path.is_file():
        return "\n## Separators: seeds and paired intervals\n\nNot generated yet: `python scripts/compare_separators.py report`.\n"
    body = path.read_text().split("\n", 1)[1].lstrip("\n")  # without its own title
    body = "".join("#" + line if line.startswith("## ") else line for line in body.splitlines(keepends=True))
    return f"\n## Separators: seeds and paired intervals (from docs/SEPARATORS.md)\n\n{body}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the ablation experiments (dvc exp run --temp, one per row and noises)")
    run_p.add_argument("--noises", type=int, nargs="+", default=list(NOISES), choices=NOISES)
    run_p.add_argument("--rows", type=int, nargs="*", default=list(range(len(rows()))))
    run_p.add_argument("--variants", type=int, nargs="*", default=list(range(len(VARIANTS))))
    run_p.add_argument("--force", action="store_true", help="rerun experiments already recorded in MLflow (their old runs are deleted first)")
    rep = sub.add_parser("report", help="write docs/RESULTS.md from the recorded metrics")
    rep.add_argument("--out", type=Path, default=REPO / "docs" / "RESULTS.md")
    args = parser.parse_args()
    if args.command == "run":
        bad = [r for r in args.rows if not 0 <= r < len(rows())]
        if bad:
            parser.error(f"--rows {bad}: rows are 0 .. {len(rows()) - 1}")
        run(args.rows, args.variants, args.noises, args.force)
    else:
        report(args.out)


if __name__ == "__main__":
    main()
