"""The markdown reports of the experiments, written from their records (they run nothing, so rerun them at will).

- :func:`write_results`: docs/RESULTS.md, the ablation from its MLflow records (the sweep
  stage's numbers at each input SNR), its figures under docs/results/, the default
  pipeline's curves, and docs/SEPARATORS.md appended one level down.
- :func:`write_separators`: docs/SEPARATORS.md, the separator comparison from the saved DVC
  experiments: per recipe, GNSDR per seed (mean and spread) and the paired difference to its
  reference recipe on the same test mixtures: per mixture, the NSDR averaged over the seeds of
  each recipe, then the length-weighted mean difference with a bootstrap 95% interval that
  resamples the test music clips (the mixtures cut from one clip move together; where the mix
  stage's output is missing, it resamples mixtures). A recipe becomes the default only if that
  interval excludes zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from danet_music2vec.atomic import atomic_path
from danet_music2vec.evaluation import snr_key
from danet_music2vec.experiments.records import (
    SavedExperiment,
    clip_of_mixture,
    recorded_metrics,
    saved_experiments,
    sweep_finished,
    workspace_mixtures,
)
from danet_music2vec.experiments.variants import (
    ABLATION_SNRS,
    ABLATION_VARIANTS,
    NOISES,
    RUNNABLE_SEPARATORS,
    SEPARATOR_VARIANTS,
    ablation_name,
    ablation_rows,
    ablation_variant_name,
    separator_names,
)
from danet_music2vec.metrics import paired_difference
from danet_music2vec.params import lookup, yaml_text
from danet_music2vec.plots import plot_ablation

COLUMNS = [  # (metrics key after snr_<x>., column title)
    ("separation.gnsdr", "GNSDR"), ("separation.gsir", "GSIR"), ("separation.gsar", "GSAR"),
    ("classification.clean.accuracy", "acc clean"), ("classification.mixture.accuracy", "acc mix"),
    ("classification.separated.accuracy", "acc sep"), ("classification.clean.f1", "F1 clean"),
    ("classification.mixture.f1", "F1 mix"), ("classification.separated.f1", "F1 sep"),
    ("classification.separated_adapted.f1", "F1 sep adapted"), ("classification.product.f1", "F1 product"),
]  # fmt: skip
# The default's recipe as each section of docs/SEPARATORS.md states it (read from the experiment's own params.yaml).
RECIPE_KEYS = ("separator.architecture", "separator.loss", "separator.hidden", "separator.layers", "separator.epochs",
               "separator.lr_schedule")  # fmt: skip


def _fmt(value: float | None, digits: int = 2) -> str:
    # NaN: pandas' None in a float column (a row not run beside rows that were).
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def markdown_table(table: pd.DataFrame) -> str:
    """``table`` as a markdown table; floats with 2 decimals, ``-`` where missing."""
    head = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns) + "\n"
    body = ""
    for record in table.to_dict("records"):
        cells = [_fmt(v) if isinstance(v, float) or v is None else str(v) for v in record.values()]
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def ablation_table(
    metrics: dict[str, dict[str, float]], noises: int, snr: float, variants: bool = False
) -> pd.DataFrame:
    """One row per ablation row (or per variant) at one noise count and input SNR (None where not recorded)."""
    table = []
    recipes = ABLATION_VARIANTS if variants else ablation_rows()
    for r, recipe in enumerate(recipes.values()):
        found = metrics.get(ablation_variant_name(r, noises) if variants else ablation_name(r, noises), {})
        values = {t: found.get(f"{snr_key(snr)}.{k}") for k, t in COLUMNS}
        # What separation adds for this row's classifier: separated minus mixture F1.
        gain = None if None in (values["F1 sep"], values["F1 mix"]) else values["F1 sep"] - values["F1 mix"]
        table.append({"row": r, "variant": recipe.what} | values | {"F1 sep - mix": gain})
    return pd.DataFrame(table)


def target_lines(found: dict[str, float], snr: float, noises: int) -> str:
    """The issue's targets for the final row at one condition, with verdicts."""
    key = snr_key(snr)
    get = lambda k: found.get(f"{key}.{k}")  # noqa: E731
    clean, mix, sep = (get(f"classification.{i}.f1") for i in ("clean", "mixture", "separated"))
    lo, hi = get("classification.separated.f1_ci_low"), get("classification.separated.f1_ci_high")
    gnsdr, oracle = get("separation.gnsdr"), get("separation.oracle_irm.gnsdr")
    gate = get("separation.spectral_gate.gnsdr")
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


def write_results(out: Path, repo: Path) -> None:
    """Write ``out`` (docs/RESULTS.md) and its figures (``out``'s folder/results/) from the ablation's MLflow records."""
    rows = ablation_rows()
    names = [ablation_name(r, n) for n in NOISES for r in range(len(rows))]
    names += [ablation_variant_name(v, n) for n in NOISES for v in range(len(ABLATION_VARIANTS))]
    recorded = recorded_metrics(names, repo, stages=("sweep",))
    metrics = {name: found for name, found in recorded.items() if sweep_finished(found)}
    figures = out.parent / "results"
    final = len(rows) - 1
    text = [
        "# Results: the ablation\n\n",
        f"Generated by `python scripts/ablation.py report` from the metrics recorded in MLflow ({len(metrics)} of "
        f"{len(names)} experiments recorded; a `-` is an experiment not run yet). The experiments are run by "
        "`python scripts/ablation.py run`: one `dvc exp run` per row and noise count, on the sample profile "
        "(9 test clips, 4 genres). Every number is from the sweep stage, which re-mixes the same test "
        "mixtures (the first `sweep.mixtures_per_clip` = 2 of each clip's 12 s test mixtures: 18) at each input SNR, "
        "so all rows are scored on identical mixtures. Weighted F1 intervals are bootstrap 95% intervals over those "
        "mixtures.\n\n",
        "## Targets (last row = current defaults)\n\n",
        "| noises | input SNR | F1 clean / mixture / separated [95% CI] | sep - mix (>= 0) | sep / clean (>= 0.95 where "
        "mix < clean) | F1 target | GNSDR separator / oracle IRM (>= 0.5, stretch 0.8) | GNSDR spectral gate "
        "| GNSDR target |\n"
        "|---|---|---|---|---|---|---|---|---|\n",
    ]
    for n in NOISES:
        for snr in sorted(ABLATION_SNRS, reverse=True):
            text.append(target_lines(metrics.get(ablation_name(final, n), {}), snr, n))
    text.append(
        "\n## One fix at a time\n\nRow 0 is the original work's recipe; each row adds one fix to the row above. "
        f"Rows 1-{final - 1} change the separation, row {final} the classifier: the `F1 mix` column shows what a more robust "
        "classifier gains without any separation, `F1 sep - mix` what separation adds on top of that classifier.\n\n"
    )
    for r, (name, recipe) in enumerate(rows.items()):
        undone = ", ".join(f"`{k}={yaml_text(v)}`" for k, v in recipe.overrides.items()) or "none (params.yaml defaults)"
        text.append(f"{r}. **{name}** {recipe.what}. Original settings still in place: {undone}.\n")
    for n in NOISES:
        tables = {snr: ablation_table(metrics, n, snr) for snr in sorted(ABLATION_SNRS, reverse=True)}
        for snr, table in tables.items():
            text.append(f"\n### {n} noise{'s' if n > 1 else ''}, input SNR {snr:g} dB\n\n")
            text.append(markdown_table(table))
        path = figures / f"ablation_n{n}.png"
        plot_ablation({f"{snr:g} dB": tables[snr] for snr in ABLATION_SNRS}, f"{n} noise(s)", path)
        text.append(f"\n![ablation, {n} noise(s)](results/{path.name})\n")
    text.append(
        "\n## Levers measured beside the defaults, not adopted\n\nEach variant is the last row with the changes its "
        "description names; row 0 of each table is the first variant. `danet-head` puts DANet + head back in place "
        "of the mask network; the other levers were measured while DANet + head was the default, so they compare "
        "with `danet-head`.\n"
    )
    for n in NOISES:
        for snr in sorted(ABLATION_SNRS, reverse=True):
            text.append(f"\n### {n} noise{'s' if n > 1 else ''}, input SNR {snr:g} dB\n\n")
            text.append(markdown_table(ablation_table(metrics, n, snr, variants=True)))
    text.append(
        "\n## Curves of the default pipeline (`make repro`, 1 noise)\n\n"
        "GNSDR and weighted F1 against the input SNR, and the separator's GNSDR per noise category, from "
        "`plots/snr_gnsdr.csv`, `plots/snr_f1.csv` and `plots/gnsdr_by_noise.csv` (`dvc plots show` draws them too).\n\n"
    )
    for name in ("snr_curves.png", "gnsdr_by_noise.png"):
        source = repo / "plots" / name
        if source.is_file():
            with atomic_path(figures / name) as tmp:
                tmp.write_bytes(source.read_bytes())
            text.append(f"![{name}](results/{name})\n\n")
    for name in ("snr_gnsdr.csv", "snr_f1.csv"):
        source = repo / "plots" / name
        if source.is_file():
            text.append(markdown_table(pd.read_csv(source)) + "\n")
    text.append(_separators_section(out.parent / "SEPARATORS.md"))
    with atomic_path(out) as tmp:
        tmp.write_text("".join(text))
    print(f"wrote {out} ({len(metrics)} of {len(names)} experiments recorded)")


def _separators_section(path: Path) -> str:
    """The separator comparison (seeds, paired intervals) that :func:`write_separators` wrote, one level down."""
    if not path.is_file():
        return "\n## Separators: seeds and paired intervals\n\nNot generated yet: `python scripts/compare_separators.py report`.\n"
    body = path.read_text().split("\n", 1)[1].lstrip("\n")  # without its own title
    body = "".join("#" + line if line.startswith("## ") else line for line in body.splitlines(keepends=True))
    return f"\n## Separators: seeds and paired intervals (from docs/SEPARATORS.md)\n\n{body}"


def write_separators(out: Path, repo: Path, n_boot: int = 2000) -> None:
    """Write ``out`` (docs/SEPARATORS.md): :func:`separators_markdown` under its title."""
    with atomic_path(out) as tmp:
        tmp.write_text("# Separators compared\n\n" + separators_markdown(n_boot, repo))
    print(f"wrote {out}")


def _system(table: pd.DataFrame, system: str) -> pd.DataFrame:
    part = table[(table["system"] == system) & ~table["silent"]]
    return part.set_index("mixture_id")[["nsdr_music", "length"]]


def _gnsdr(part: pd.DataFrame) -> float:
    return float(np.average(part["nsdr_music"], weights=part["length"]))


def _recipe(params: dict) -> str:
    values = []
    for dotted in RECIPE_KEYS:
        try:
            value = lookup(params, dotted)
        except KeyError:  # a key that code version did not have yet
            value = "-"
        values.append(f"`{dotted.split('.', 1)[1]}: {value}`")
    return ", ".join(values)


def separators_markdown(n_boot: int, repo: Path) -> str:
    """The markdown: per code version (newest first) and noise count, GNSDR per seed and paired differences.

    Experiments on different code are never paired: a code change (e.g. how training
    examples are drawn) would be counted as the recipe's effect.
    """
    # Per noise count and recipe, per seed: the names the experiment may be saved under.
    names = {n: {v: [separator_names(v, s, n) for s in range(10)] for v in SEPARATOR_VARIANTS} for n in NOISES}
    wanted = [name for by_variant in names.values() for seeds in by_variant.values() for candidates in seeds
              for name in candidates]
    found = saved_experiments(wanted, repo)
    codes = list(dict.fromkeys(code for code, _ in found))  # newest first
    mixtures = workspace_mixtures(repo)
    sections = [_code_section({name: exp for (c, name), exp in found.items() if c == code}, names[n], n_boot, mixtures, n)
                for code in codes for n in NOISES]  # fmt: skip
    sections = [s for s in sections if s]
    if not sections:
        return "Not recorded yet: run `python scripts/compare_separators.py run`.\n"
    unit = "the test music clips (the mixtures cut from one clip move together)" if mixtures is not None else "mixtures"
    intro = (
        "Seeds and paired intervals. Generated by `python scripts/compare_separators.py report` from the experiments "
        "that `python scripts/compare_separators.py run [--noises 2]` saved (`dvc exp run --temp ... score` per variant "
        "and training seed; their outputs are read from the experiments' git refs). One section per version of the "
        "code (src/, stages/, dvc.yaml), newest first, and noise count; experiments on different code are not paired. "
        "Paired difference: per mixture, each variant's NSDR averaged over its seeds, minus its reference's (the recipe "
        "it differs from in one respect); length-weighted mean with a bootstrap 95% interval that resamples "
        f"{unit} ({n_boot} resamples).\n\n"
    )
    return intro + "\n".join(sections)


def _code_section(
    saved: dict[str, SavedExperiment],
    names: dict[str, list[tuple[str, ...]]],
    n_boot: int,
    mixtures: pd.DataFrame | None,
    noises: int,
) -> str:
    # Per recipe, one experiment per seed saved on this code: under today's name where both names were saved.
    runs = {v: [next(n for n in candidates if n in saved) for candidates in seeds if saved.keys() & set(candidates)]
            for v, seeds in names.items()}  # fmt: skip
    if not runs["default"]:
        return ""
    tables = {name: exp.table for name, exp in saved.items()}

    def mean_over_seeds(variant: str, system: str = "separator") -> pd.DataFrame:
        parts = [_system(tables[n], system) for n in runs[variant]]
        joined = pd.concat(parts, axis=1, join="inner", keys=range(len(parts)))
        nsdr = joined.xs("nsdr_music", axis=1, level=1).mean(axis=1)
        return pd.DataFrame({"nsdr_music": nsdr, "length": joined.xs("length", axis=1, level=1).iloc[:, 0]})

    default = saved[runs["default"][0]]
    first = default.table
    oracle, gate = _gnsdr(_system(first, "oracle_irm")), _gnsdr(_system(first, "spectral_gate"))
    clips = None if mixtures is None else clip_of_mixture(first, mixtures)
    commits = sorted({exp.commit for exp in saved.values()})
    lines = [
        f"## Code {default.code}, {noises} noise{'s' if noises > 1 else ''} (experiments on commit(s) {', '.join(commits)})\n\n",
        f"The default here: {_recipe(default.params)}. All are scored on the same {len(_system(first, 'separator'))} test "
        f"mixtures (every test clip with several test noises, {noises} noise{'s' if noises > 1 else ''} per mixture, 0 dB; "
        "BSS Eval at 8 kHz). On them the oracle ratio "
        f"mask reaches GNSDR {oracle:.2f} dB and the spectral gate {gate:.2f} dB.\n\n",
        "| variant | what | seeds | GNSDR per seed (dB) | mean +- sd | / oracle | separated F1 (mean) "
        "| paired diff vs reference [95% CI] |\n|---|---|---|---|---|---|---|---|\n",
    ]
    for variant, recipe in SEPARATOR_VARIANTS.items():
        if not runs[variant]:
            continue
        per_seed = [_gnsdr(_system(tables[n], "separator")) for n in runs[variant]]
        f1 = [saved[n].score.get("classification.separated.f1") for n in runs[variant]]
        f1_text = f"{np.mean([x for x in f1 if x is not None]):.2f}" if any(x is not None for x in f1) else "-"
        sd = f"{np.std(per_seed, ddof=1):.2f}" if len(per_seed) > 1 else "-"
        if recipe.reference is None:
            paired = "(reference)"
        elif not runs[recipe.reference]:
            paired = f"vs {recipe.reference}: not run on this code"
        else:
            both = mean_over_seeds(variant).merge(mean_over_seeds(recipe.reference), left_index=True, right_index=True,
                                                  suffixes=("", "_reference"))  # fmt: skip
            groups = None if clips is None else clips.loc[both.index]
            diff, lo, hi = paired_difference(both["nsdr_music"], both["nsdr_music_reference"], both["length"], n=n_boot,
                                             groups=groups)  # fmt: skip
            verdict = "better" if lo > 0 else "worse" if hi < 0 else "no difference shown"
            paired = f"vs {recipe.reference}: {diff:+.2f} [{lo:+.2f}, {hi:+.2f}] {verdict}"
        lines.append(
            f"| {variant} | {recipe.what} | {len(per_seed)} | {', '.join(f'{x:.2f}' for x in per_seed)} | "
            f"{np.mean(per_seed):.2f} +- {sd} | {np.mean(per_seed) / oracle:.2f} | {f1_text} | {paired} |\n"
        )
    not_run = [v for v in RUNNABLE_SEPARATORS if not runs[v]]
    if not_run:
        lines.append(f"\nNot run on this code: {', '.join(not_run)}.\n")
    return "".join(lines)
