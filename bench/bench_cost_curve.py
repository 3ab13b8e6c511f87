"""Cost curve: every stage's wall time and peak memory against its data size, fitted and projected to the `full` profile.

    python bench/bench_cost_curve.py [--scales 1 3 10] [--fractions 0.1 0.3 1] [--quick]
        (writes bench/results/cost_curve.json, .md and docs/cost_curve.png; --quick: *_quick, tiny sizes, a check)
    python bench/bench_cost_curve.py --scales 10 --fractions --one-worker --name cost_curve_10x
        (score and sweep again with one worker at 10x; writes bench/results/cost_curve_10x.json and .md;
        --stop-after score --one-worker score: score only, about half the time)
    python bench/bench_cost_curve.py --scales --fractions 1 --adapt-max 700 --name cost_curve_adapt
        (the training stages at the `full` profile's size, adapt_music2vec included, after `make repro`)

Data: ``local`` profiles cut from the repository's real clips (bench/scale_profile.py: never test audio;
the labels are not true, this measures cost). Each profile runs the stages as DVC runs them, each its own
process in a temporary copy of the tracked files (bench_stages.py: wall time, CPU time, the largest single
process's and the whole process tree's peak memory), with the training stages cut to ``--epochs`` and their
time per epoch scaled to params.yaml's epochs. Two axes, each stage fitted on the one its size varies on:

- test set: ``--scales`` x the sample's 9 test clips (x ``mix.test_mixtures_per_clip`` mixtures), with a
  fixed training set; mix, separate, classify, score, sweep, listen and package, against test mixtures.
  The first scale runs every stage; the larger ones take its classifiers instead of running features,
  train_music2vec and adapt_music2vec again (their work does not depend on the test set). ``--one-worker``
  runs score and sweep a second time at each scale with ``workers: 1``: the ratio of the two times is the
  parallel speed-up the issue sets a target for.
- training size: ``--fractions`` of GTZAN's 1000 music and ESC-50's 2000 noise clips (split.test_fraction
  of them test); download, split and features against clips, train_separator, train_music2vec and
  adapt_music2vec against training music clips (with the first test-set profile's point too).
  adapt_music2vec runs only up to ``--adapt-max`` training clips: it takes the longest.
  ``models/separator.pt`` comes from the first test-set run (the separate stage's output: the shipped
  separator, the same file for any data), or from this repository's models/ when ``--scales`` is empty.

The defaults take about 45 minutes on an idle 2-core machine (estimated); ``--scales 1 3 10`` (the issue's 10x) about 30 more.

Each stage's seconds and peak memory are fitted as ``a + b n`` (least squares) and as a log-log slope (above 1:
faster than linear), then projected to the ``full`` profile (FULL_SIZES) on this machine's cores, and by a
model on 16 (:func:`project`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import RESULTS, write_result  # noqa: E402
from bench_stages import REPO, TRAINING, copy_repo, projected_seconds, run_stage, shorten_training, stage_env  # noqa: E402
from scale_profile import build_scale_profile  # noqa: E402

# Each stage's size variable: what its work is proportional to, and so which axis measures it.
SIZE = {
    "download": "clips", "split": "clips", "features": "clips",
    "train_separator": "train_clips", "train_music2vec": "train_clips", "adapt_music2vec": "train_clips",
    "mix": "test_mixtures", "separate": "test_mixtures", "classify": "test_mixtures", "score": "test_mixtures",
    "sweep": "test_mixtures", "listen": "test_mixtures", "package": "test_mixtures",
}  # fmt: skip
TRAINING_AXIS_STAGES = ["download", "split", "features", "train_separator", "train_music2vec", "adapt_music2vec"]
# Stages whose work does not depend on the test set: run on the first test-set profile only, whose models the
# larger ones take (same genres, and the separator is the shipped one whatever the data).
TEST_AXIS_ONCE = ["features", "train_music2vec", "adapt_music2vec"]
MODELS = ["music2vec.pt", "music2vec_adapted.pt", "separator.pt"]
# Points are taken from every run a stage ran in, except features': its work is the training split's audio, a
# share of the clips that differs between the two axes.
AXES = {"features": ("training",)}
# The `full` profile as the issue sizes it: about 290 test clips x 5 mixtures, 700 clips to train music2vec,
# GTZAN's 1000 music and ESC-50's 2000 noise clips through download, split and features.
FULL_SIZES = {"test_mixtures": 1450, "train_clips": 700, "clips": 3000}
FULL_CLIPS = {"music": 1000, "noise": 2000}
SAMPLE_TEST_CLIPS = 9  # the sample's test music clips: scale 1
# Test-set axis: fixed training music and noise. 31 + 9 = 40 music clips is split.min_clips_per_genre (4) for
# each of 10 genres at scale 1.
# 100 noise clips: two per ESC-50 category, as the sample (a category of one clip never goes to test).
TEST_AXIS = {"train_music": 31, "noise": 100, "genres": 10, "categories": 50}
QUICK = {"scales": [0.34, 0.67], "fractions": [0.02, 0.04], "train_music": 13, "noise": 40, "genres": 4, "categories": 10}
# Stages that split their per-mixture work over `workers` processes (one per core by default).
WORKER_STAGES = {"separate", "classify", "score", "sweep"}
# The stages whose time with every core is set against one worker's (--one-worker; the 0.6 target).
ONE_WORKER_STAGES = ("score", "sweep")
# Stages whose work is torch ops, in one process on all cores (intra-op threads). adapt_music2vec also separates its
# training mixtures in `workers` processes; modelled as torch work, its larger part (fine-tuning, twice).
TORCH_STAGES = {"features", "train_separator", "train_music2vec", "adapt_music2vec"}
# Their parallel fraction (Amdahl), from the 1- and 2-thread throughputs in docs/BENCHMARKS.md (training
# speed: music2vec 42.2 -> 59.8 crops/s, a speed-up of 1.42 = 1 / (1 - p + p / 2)).
TORCH_PARALLEL_FRACTION = 2 * (1 - 42.2 / 59.8)
GIB = 1024


def fit_line(n: list[float], y: list[float]) -> dict[str, float]:
    """``y = intercept + per_item * n`` by least squares with ``per_item >= 0``, and the slope of log y against log n
    (1: linear). A cost does not fall as the data grows: a falling fit is noise around a constant, the mean."""
    n_arr, y_arr = np.asarray(n, dtype=float), np.asarray(y, dtype=float)
    (intercept, per_item), *_ = np.linalg.lstsq(np.stack([np.ones_like(n_arr), n_arr], axis=1), y_arr, rcond=None)
    if per_item < 0:
        intercept, per_item = float(y_arr.mean()), 0.0
    slope = float(np.polyfit(np.log(n_arr), np.log(np.maximum(y_arr, 1e-9)), 1)[0])
    return {"intercept": float(intercept), "per_item": float(per_item), "loglog_slope": slope}


def at(fit: dict[str, float], n: float) -> float:
    """The fitted line at ``n``."""
    return fit["intercept"] + fit["per_item"] * n


def torch_factor(cores: int, measured_cores: int, parallel: float = TORCH_PARALLEL_FRACTION) -> float:
    """Time on ``cores`` over time on ``measured_cores`` of work with Amdahl parallel fraction ``parallel``."""
    return ((1 - parallel) + parallel / cores) / ((1 - parallel) + parallel / measured_cores)


def project(fits: dict[str, dict], sizes: dict[str, float], cores: int, measured_cores: int) -> dict[str, dict]:
    """Each stage's seconds and peak memory at ``sizes`` on ``cores`` cores, from fits measured on ``measured_cores``.

    On the measured core count it is the fitted line. On another count it is a model: score and sweep's
    per-mixture part is divided among ``cores`` workers instead of ``measured_cores`` (one per core) and their
    tree holds ``cores`` workers; the torch stages' per-item part is scaled by Amdahl's law
    (:func:`torch_factor`); every other stage (single-threaded Python, numpy, soundfile) is as measured.
    """
    out = {}
    for stage, fit in fits.items():
        n = sizes[fit["size"]]
        seconds, tree = at(fit["seconds"], n), at(fit["tree_mib"], n)
        if cores != measured_cores:
            per_item = fit["seconds"]["per_item"] * n
            if stage in WORKER_STAGES:
                seconds += per_item * (measured_cores / cores - 1)
                tree += (cores - measured_cores) * fit["worker_mib"]
            elif stage in TORCH_STAGES:
                seconds += per_item * (torch_factor(cores, measured_cores) - 1)
        out[stage] = {"size": fit["size"], "n": n, "seconds": seconds, "tree_mib": tree,
                      "single_mib": at(fit["single_mib"], n)}  # fmt: skip
    return out


def run_profile(work_root: Path, name: str, music: int, noise: int, labels: dict[str, int], test_fraction: float | None,
                stages: list[str], epochs: int, models: list[Path] = ()) -> dict:  # fmt: skip
    """Build one profile, put ``models`` (files of an earlier run) in its models/, run ``stages`` on it; its sizes
    and each stage's row (bench_stages.run_stage)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    dvc_stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    work = work_root / name
    copy_repo(work)
    data = build_scale_profile(work_root / f"{name}-data", music, noise, **labels)
    short = shorten_training(params, epochs)
    short["data"] |= data
    if test_fraction is not None:
        short["split"]["test_fraction"] = test_fraction
    (work / "params.yaml").write_text(yaml.safe_dump(short, sort_keys=False))
    (work / "models").mkdir(exist_ok=True)
    for model in models:
        shutil.copy2(model, work / "models" / model.name)
    env = stage_env(work, f"cost-{name}")
    rows: dict[str, dict] = {}
    for stage in (s for s in dvc_stages if s in stages):
        print(f"== {name}: {stage}", flush=True)
        row = run_stage(stage, dvc_stages[stage]["cmd"], work, env)
        if stage in TRAINING:
            metrics = json.loads((work / TRAINING[stage][0]).read_text())
            per_epoch = rows.get("train_music2vec", {}).get("seconds_per_epoch")
            row |= projected_seconds(stage, row["seconds"], metrics, short, params, per_epoch)
        rows[stage] = row
        print(f"   {row['seconds']:.1f} s, tree {row['peak_tree_mib']:.0f} MiB", flush=True)

    def metric(stage: str, key: str) -> float | None:
        # Only a stage that ran here: the copy also holds the sample run's committed metrics.
        return json.loads((work / "metrics" / f"{stage}.json").read_text())[key] if stage in rows else None

    download = json.loads((work / "metrics" / "download.json").read_text())
    sizes = {"clips": download["clips.music"] + download["clips.noise"], "train_clips": metric("split", "clips.music.train"),
             "test_mixtures": metric("mix", "mixtures.test")}  # fmt: skip
    return {"profile": name, "music": music, "noise": noise, **labels, "test_fraction": test_fraction,
            "sizes": sizes, "stages": rows, "work": work}  # fmt: skip


def fit_stages(runs: list[dict]) -> dict[str, dict]:
    """Per stage: its points on the axis where its size varies, and the fitted lines of seconds and memory."""
    fits = {}
    for stage, size in SIZE.items():
        points = [(r["sizes"][size], r["stages"][stage]) for r in runs
                  if stage in r["stages"] and r["axis"] in AXES.get(stage, ("test", "training"))]  # fmt: skip
        if len({n for n, _ in points}) < 2:
            continue
        n = [p[0] for p in points]
        seconds = [row.get("projected_seconds", row["seconds"]) for _, row in points]
        fits[stage] = {
            "size": size, "n": n, "seconds_points": seconds, "tree_mib_points": [row["peak_tree_mib"] for _, row in points],
            "seconds": fit_line(n, seconds), "cpu_seconds": fit_line(n, [row["cpu_seconds"] for _, row in points]),
            "tree_mib": fit_line(n, [row["peak_tree_mib"] for _, row in points]),
            "single_mib": fit_line(n, [row["peak_rss_mib"] for _, row in points]),
            "worker_mib": max(row["peak_worker_uss_mib"] for _, row in points),
        }  # fmt: skip
    return fits


def plot(fits: dict[str, dict], projection: dict[str, dict], path: Path) -> None:
    """Log-log seconds against size, one panel per size variable: measured points, the fitted line, the projection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = {"test_mixtures": "test mixtures", "train_clips": "training music clips", "clips": "music + noise clips"}
    fig, axes = plt.subplots(1, 3, figsize=(16, 5), constrained_layout=True)
    for ax, size in zip(axes, labels):
        for i, (stage, fit) in enumerate((s, f) for s, f in fits.items() if f["size"] == size):
            color = plt.cm.tab10(i % 10)
            line = np.geomspace(min(fit["n"]), FULL_SIZES[size], 50)
            ax.plot(fit["n"], fit["seconds_points"], "o", color=color)
            ax.plot(line, [at(fit["seconds"], x) for x in line], "-", color=color,
                    label=f"{stage} (slope {fit['seconds']['loglog_slope']:.2f})")  # fmt: skip
            ax.plot(FULL_SIZES[size], projection[stage]["seconds"], "*", color=color, markersize=12)
        ax.axvline(FULL_SIZES[size], color="grey", linestyle=":", linewidth=1)
        ax.set(xscale="log", yscale="log", xlabel=labels[size], ylabel="seconds (training scaled to params.yaml's epochs)",
               title=f"stages against {labels[size]}; * = full profile, 2 cores")  # fmt: skip
        ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(fits: dict[str, dict], proj: dict[str, dict], proj16: dict[str, dict], cores: int) -> str:
    """The docs table: measured points, slopes, and the full profile's projection."""
    header = ("| stage | size variable | measured: size -> seconds (peak tree MiB) | time slope | memory slope "
              f"| full profile: seconds on {cores} cores | on 16 (model) | peak MiB (tree / largest process) |")
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for stage in SIZE:
        if stage not in fits:
            continue
        fit, p, p16 = fits[stage], proj[stage], proj16[stage]
        points = "; ".join(f"{n:g} -> {s:.0f} s ({m:.0f})" for n, s, m in zip(fit["n"], fit["seconds_points"], fit["tree_mib_points"]))
        lines.append(f"| `{stage}` | {fit['size']} | {points} | {fit['seconds']['loglog_slope']:.2f} | "
                     f"{fit['tree_mib']['loglog_slope']:.2f} | {p['seconds']:.0f} | {p16['seconds']:.0f} | "
                     f"{p['tree_mib']:.0f} / {p['single_mib']:.0f} |")  # fmt: skip
    total, total16 = sum(p["seconds"] for p in proj.values()), sum(p["seconds"] for p in proj16.values())
    lines.append(f"| **total** | | | | | **{total:.0f} ({total / 3600:.1f} h)** | **{total16:.0f} ({total16 / 3600:.1f} h)** | |")
    return "\n".join(lines) + "\n"


def one_worker(run: dict, env_name: str, stages: list[str]) -> dict[str, dict]:
    """``stages`` (score, sweep) again in ``run``'s copy with ``workers: 1``, from scratch; their rows, keyed ``<stage>@1``."""
    work = run["work"]
    params = yaml.safe_load((work / "params.yaml").read_text())
    (work / "params.yaml").write_text(yaml.safe_dump(params | {"workers": 1}, sort_keys=False))
    dvc_stages = yaml.safe_load((work / "dvc.yaml").read_text())["stages"]
    env = stage_env(work, env_name)
    rows = {}
    for stage in stages:
        shutil.rmtree(work / "checkpoints" / stage, ignore_errors=True)  # nothing resumed: all the work, one worker
        print(f"== {run['profile']}: {stage}, 1 worker", flush=True)
        rows[f"{stage}@1"] = run_stage(stage, dvc_stages[stage]["cmd"], work, env)
        print(f"   {rows[f'{stage}@1']['seconds']:.1f} s", flush=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return rows


def worker_ratios(runs: list[dict]) -> dict[str, dict[str, float]]:
    """Per test-set profile run with ``--one-worker``: score's and sweep's time with every core over one worker's."""
    return {r["profile"]: {s: r["stages"][s]["seconds"] / r["stages"][f"{s}@1"]["seconds"] for s in ONE_WORKER_STAGES
                           if f"{s}@1" in r["stages"]} for r in runs if any(k.endswith("@1") for k in r["stages"])}  # fmt: skip


def measured(runs: list[dict]) -> str:
    """Every stage row of every run as measured: what a run with one size per axis has instead of fitted lines."""
    lines = ["", "| profile | sizes | stage | seconds | projected s | peak tree MiB | largest process MiB |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in runs:
        sizes = ", ".join(f"{k} {v}" for k, v in r["sizes"].items() if v is not None)
        for stage, row in r["stages"].items():
            projected = row.get("projected_seconds")
            lines.append(f"| {r['profile']} | {sizes} | `{stage}` | {row['seconds']:.1f} | "
                         f"{'' if projected is None else f'{projected:.0f}'} | {row['peak_tree_mib']:.0f} | {row['peak_rss_mib']:.0f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="*", default=[1, 3],
                        help="test-set sizes, x the sample's (1 3 10: the issue's, about 30 minutes more)")  # fmt: skip
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.1, 0.3, 1.0],
                        help="training-size axis: fractions of GTZAN's 1000 + ESC-50's 2000 clips")  # fmt: skip
    parser.add_argument("--adapt-max", type=int, default=100, help="adapt_music2vec runs up to this many training clips")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each training stage in this run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check that the benchmark works")
    parser.add_argument("--workdir", type=Path, help="where the temporary copies and profiles go (full sizes: about 5 GB)")
    parser.add_argument("--one-worker", nargs="*", choices=ONE_WORKER_STAGES, default=None,
                        help="these stages (none named: score and sweep) again with 1 worker at each test-set size")  # fmt: skip
    parser.add_argument("--stop-after", choices=list(SIZE), help="test-set profiles run the stages up to this one only")
    parser.add_argument("--name", default="cost_curve", help="results' name in bench/results/ (the docs' plot: cost_curve only)")
    args = parser.parse_args()
    cfg = TEST_AXIS | ({k: QUICK[k] for k in TEST_AXIS} if args.quick else {})
    labels = {"genres": cfg["genres"], "categories": cfg["categories"]}
    scales, fractions = (QUICK["scales"], QUICK["fractions"]) if args.quick else (args.scales, args.fractions)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    all_stages = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        for i, scale in enumerate(scales):
            test_clips = round(SAMPLE_TEST_CLIPS * scale)
            music = test_clips + cfg["train_music"]
            stages = [s for s in all_stages if i == 0 or s not in TEST_AXIS_ONCE]
            if args.stop_after:
                stages = [s for s in stages if all_stages.index(s) <= all_stages.index(args.stop_after)]
            models = [runs[0]["work"] / "models" / m for m in MODELS] if i else []
            run = run_profile(root, f"test-{scale:g}x", music, cfg["noise"], labels, test_clips / music, stages,
                              args.epochs, models)  # fmt: skip
            if args.one_worker is not None:
                again = [s for s in (args.one_worker or ONE_WORKER_STAGES) if s in stages]
                run["stages"] |= one_worker(run, f"cost-{run['profile']}-1-worker", again)
            runs.append(run | {"axis": "test", "scale": scale})
        # What adapt_music2vec reads, written by separate.
        separator = [(runs[0]["work"] if runs else REPO) / "models" / "separator.pt"]
        if fractions and not separator[0].exists():
            raise SystemExit(f"{separator[0]} is missing: run `make repro` first, or give --scales")
        for fraction in fractions:
            music, noise = round(FULL_CLIPS["music"] * fraction), round(FULL_CLIPS["noise"] * fraction)
            expected_train = music * (1 - params["split"]["test_fraction"])
            stages = [s for s in TRAINING_AXIS_STAGES if s != "adapt_music2vec" or expected_train <= args.adapt_max]
            run = run_profile(root, f"train-{fraction:g}", music, noise, labels, None, stages, args.epochs, separator)
            runs.append(run | {"axis": "training", "fraction": fraction})
            shutil.rmtree(run["work"] / "data", ignore_errors=True)  # the large profiles' copies: disk, not needed now
        for run in runs:
            run.pop("work")
    cores = psutil.cpu_count()
    fits = fit_stages(runs)
    proj, proj16 = project(fits, FULL_SIZES, cores, cores), project(fits, FULL_SIZES, 16, cores)
    over = {s: p["tree_mib"] for s, p in proj.items() if p["tree_mib"] > 8 * GIB}
    faster = {s: f["tree_mib"]["loglog_slope"] for s, f in fits.items() if f["tree_mib"]["loglog_slope"] > 1.1}
    name = args.name + ("_quick" if args.quick else "")
    table = markdown(fits, proj, proj16, cores) + measured(runs)
    (RESULTS / f"{name}.md").parent.mkdir(exist_ok=True)
    (RESULTS / f"{name}.md").write_text(table)
    if fits:
        plot(fits, proj, (REPO / "docs" / "cost_curve.png") if name == "cost_curve" else (RESULTS / f"{name}.png"))
    print(table)
    write_result(name, {
        "benchmark": "cost_curve", "quick": args.quick, "epochs_run": args.epochs, "cores": cores,
        "full_sizes": FULL_SIZES, "full_epochs": {g: params[g]["epochs"] for g in ("separator", "music2vec", "adapt_music2vec")},
        "runs": runs, "fits": fits,
        "projection": {"cores": cores, "stages": proj, "total_seconds": sum(p["seconds"] for p in proj.values())},
        "projection_16_cores_model": {"stages": proj16, "total_seconds": sum(p["seconds"] for p in proj16.values()),
                                      "torch_parallel_fraction": TORCH_PARALLEL_FRACTION},
        "targets": {"peak_over_8_gib": over, "memory_faster_than_linear": faster, "worker_ratio": worker_ratios(runs)},
    })  # fmt: skip


if __name__ == "__main__":
    main()
