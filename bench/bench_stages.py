"""Wall time and peak memory of every pipeline stage, each run as its own process, as DVC runs it.

    python bench/bench_stages.py [--epochs 2]     (writes bench/results/stages.json)

The stage scripts run in dvc.yaml's order in a temporary copy of the repository's tracked
files (the sample data included), so the workspace's outputs are untouched; MLflow logs go
to a throwaway store there. Both training stages are shortened to ``--epochs`` epochs; their
training time per epoch is scaled to params.yaml's epochs (``projected_seconds``). Peak
memory is the stage process's maximum resident set size, from ``os.wait4``.
"""

from __future__ import annotations

import argparse
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
from _util import write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# Training stages: (metrics file, key of the training seconds in it, params group).
TRAINING = {
    "train_danet": ("metrics/train_danet.json", "seconds", "danet"),
    "train_music2vec": ("metrics/train_music2vec.json", "train_seconds", "music2vec"),
}


def copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        src = REPO / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())


def run_stage(name: str, cmd: str, cwd: Path, env: dict[str, str]) -> dict[str, float]:
    start = time.perf_counter()
    argv = cmd.split()
    if argv[0] == "python":  # this interpreter (the project's venv), as `make` runs DVC from it
        argv[0] = sys.executable
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed:\n{stderr.decode(errors='replace')[-2000:]}")
    return {"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024}  # ru_maxrss is in KiB on Linux


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
        short = yaml.safe_load((work / "params.yaml").read_text())
        short["danet"] |= {"epochs": args.epochs, "kmeans_epochs": min(1, params["danet"]["kmeans_epochs"])}
        short["music2vec"]["epochs"] = args.epochs
        (work / "params.yaml").write_text(yaml.safe_dump(short, sort_keys=False))
        env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "DVC_EXP_NAME": "bench-stages"}
        for name, stage in stages.items():
            print(f"== {name}", flush=True)
            row = {"stage": name} | run_stage(name, stage["cmd"], work, env)
            if name in TRAINING:
                path, key, group = TRAINING[name]
                train_seconds = json.loads((work / path).read_text())[key]
                per_epoch = train_seconds / args.epochs
                row |= {
                    "epochs_run": args.epochs,
                    "seconds_per_epoch": per_epoch,
                    "projected_seconds": row["seconds"] - train_seconds + per_epoch * params[group]["epochs"],
                }
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
