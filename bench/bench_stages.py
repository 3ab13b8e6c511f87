"""Wall time and peak memory of every pipeline stage, each run as its own process, as DVC runs it.

    python bench/bench_stages.py [--epochs 2]     (writes bench/results/stages.json)

The stage scripts run in dvc.yaml's order in a temporary copy of the repository's tracked
files (the sample data included), so the workspace's outputs are untouched; MLflow logs go
to a throwaway store there. Both training stages are shortened to ``--epochs`` epochs; their
training time per epoch is scaled to params.yaml's epochs (``projected_seconds``). Peak
memory: ``peak_rss_mib`` is the largest single process of the stage (its own or a worker's maximum
resident set size, from ``os.wait4``), ``peak_tree_mib`` the largest total over the stage's process
tree (``_util.TreeRss``, the stage every 0.1 s, its workers every 1 s; separate, classify, score and sweep run ``workers`` processes).
``cpu_seconds`` is user + system time of the stage and every process it waited for.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import TreeRss, write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# Training stages: (metrics file, key of the training seconds in it, params group of their epochs).
# adapt_music2vec also trains a clean classifier again (music2vec.epochs): projected_seconds says how.
TRAINING = {
    "train_separator": ("metrics/train_separator.json", "seconds", "separator"),
    "train_music2vec": ("metrics/train_music2vec.json", "train_seconds", "music2vec"),
    "adapt_music2vec": ("metrics/adapt_music2vec.json", "train_seconds", "adapt_music2vec"),
}


def copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        src = REPO / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())


def stage_env(work: Path, experiment: str) -> dict[str, str]:
    """The environment stages run with in the copy ``work``: its own MLflow store, runs under ``experiment``."""
    return os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "DVC_EXP_NAME": experiment}


def run_stage(name: str, cmd: str, cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Run one stage's command as DVC would; its wall and CPU seconds and peak memory (module docstring)."""
    start = time.perf_counter()
    argv = cmd.split()
    if argv[0] == "python":  # this interpreter (the project's venv), as `make` runs DVC from it
        argv[0] = sys.executable
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    with TreeRss(proc.pid) as tree:
        stderr = proc.stderr.read() if proc.stderr else b""
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed:\n{stderr.decode(errors='replace')[-2000:]}")
    # wait4 reports the stage and every descendant it waited for: ru_maxrss is the largest one (KiB on Linux).
    return {"seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024,
            "peak_tree_mib": tree.peak_tree_mib, "peak_main_rss_mib": tree.peak_main_mib,
            "peak_worker_uss_mib": tree.peak_child_mib}  # fmt: skip


def shorten_training(params: dict, epochs: int) -> dict:
    """A copy of ``params`` (params.yaml as a dict) with every training stage cut to at most ``epochs`` epochs."""
    short = copy.deepcopy(params)
    for group in ("separator", "music2vec", "adapt_music2vec"):
        short[group]["epochs"] = min(epochs, params[group]["epochs"])
    for architecture in ("chimera", "danet"):
        short["separator"][architecture]["kmeans_epochs"] = min(epochs, params["separator"][architecture]["kmeans_epochs"])
    return short


def projected_seconds(name: str, seconds: float, metrics: dict, short: dict, full: dict,
                      music2vec_per_epoch: float | None = None) -> dict[str, float]:  # fmt: skip
    """A shortened training stage's time at ``full``'s epochs: its training seconds per epoch, scaled.

    Empty for a stage that trained nothing (``separator.start: shipped`` copies a network). adapt_music2vec
    trains three times: a clean classifier without its validation tracks (``music2vec.epochs``, at
    ``music2vec_per_epoch``, train_music2vec's seconds per epoch, times the share of tracks it keeps), the
    fine-tuning of that one on the same share, and the fine-tuning on every track (its ``train_seconds``).
    """
    _, key, group = TRAINING[name]
    if key not in metrics:
        return {}
    run, target = short[group]["epochs"], full[group]["epochs"]
    per_epoch = metrics[key] / run
    extra = per_epoch * (target - run)
    if name == "adapt_music2vec":
        if music2vec_per_epoch is None:
            raise ValueError("adapt_music2vec's projection needs train_music2vec's seconds per epoch")
        kept = 1 - metrics["validation_clips"] / metrics["train_clips"]
        extra *= 1 + kept
        extra += music2vec_per_epoch * kept * (full["music2vec"]["epochs"] - short["music2vec"]["epochs"])
    return {"epochs_run": run, "seconds_per_epoch": per_epoch, "projected_seconds": seconds + extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each training stage in this run")
    args = parser.parse_args()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        copy_repo(work)
        short = shorten_training(params, args.epochs)
        (work / "params.yaml").write_text(yaml.safe_dump(short, sort_keys=False))
        env = stage_env(work, "bench-stages")
        for name, stage in stages.items():
            print(f"== {name}", flush=True)
            row = {"stage": name} | run_stage(name, stage["cmd"], work, env)
            if name in TRAINING:
                metrics = json.loads((work / TRAINING[name][0]).read_text())
                per_epoch = next((r["seconds_per_epoch"] for r in results if r["stage"] == "train_music2vec"), None)
                row |= projected_seconds(name, row["seconds"], metrics, short, params, per_epoch)
            results.append(row)
    projected = sum(r.get("projected_seconds", r["seconds"]) for r in results)
    write_result(
        "stages",
        {
            "benchmark": "stages",
            "note": "training stages shortened; projected_seconds scales their epochs to params.yaml",
            "stages": results,
            "pipeline_projected_seconds": projected,
            "peak_rss_mib_max": max(r["peak_rss_mib"] for r in results),
        },
    )


if __name__ == "__main__":
    main()
