"""MLflow logging overhead of a stage: the local SQLite store against the team's tracking server.

    python bench/bench_tracking.py        (writes bench/results/tracking.json; starts and stops its own servers)

Per store: the time of one metric batch (``StageRun.log_metrics`` of ``--batch`` metrics, the size
of a stage's summary; median of ``--batches``), and the logging of one whole pipeline run as the
stages do it: ten child runs (open, params, one summary batch, one plot artifact, close), with one
batch per epoch for the two training stages. Models are left out: their upload is size-bound.
The server is a real `mlflow server` on PostgreSQL with artifacts proxied to S3 (moto), all on
127.0.0.1 of this machine, so the figures are the software's overhead, not a network's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import write_result  # noqa: E402

from danet_music2vec import servers, tracking  # noqa: E402

STAGES = ["download", "split", "mix", "features", "train_danet", "train_music2vec", "separate", "classify", "score", "sweep"]
EPOCHS = {"train_danet": 15, "train_music2vec": 15}


def measure(workdir: Path, batch: int, batches: int, tag: str) -> dict[str, float]:
    os.environ["DVC_ROOT"] = str(workdir)
    params = {"noises": 1, "mix": {"seed": 0, "snr_db": 0}}
    metrics = {f"metric_{i}": float(i) for i in range(batch)}
    plot = workdir / "plot.csv"
    plot.write_text("x,y\n" + "\n".join(f"{i},{i * i}" for i in range(100)) + "\n")

    os.environ["DVC_EXP_NAME"] = f"bench-batches-{tag}"
    with tracking.stage_run("bench", params) as run:
        run.log_metrics(metrics)  # warm-up: connection, experiment lookup
        times = []
        for step in range(batches):
            start = time.perf_counter()
            run.log_metrics(metrics, step=step)
            times.append(time.perf_counter() - start)

    os.environ["DVC_EXP_NAME"] = f"bench-pipeline-{tag}"
    start = time.perf_counter()
    for stage in STAGES:
        with tracking.stage_run(stage, params, groups=("mix",)) as run:
            for epoch in range(EPOCHS.get(stage, 0)):
                run.log_metrics({"loss": 1.0 / (epoch + 1), "seconds": 1.0}, step=epoch)
            run.log_metrics(metrics)
            run.log_artifact(plot, "plots")
    pipeline = time.perf_counter() - start
    return {
        "metric_batch_ms_median": 1000 * statistics.median(times),
        "metric_batch_ms_p90": 1000 * sorted(times)[int(0.9 * len(times))],
        "pipeline_logging_seconds": pipeline,
        "stage_run_seconds_mean": pipeline / len(STAGES),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=20, help="metrics per batch (default: %(default)s)")
    parser.add_argument("--batches", type=int, default=50, help="batches timed per store (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        work = Path(tmp)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        (work / "sqlite").mkdir()
        sqlite = measure(work / "sqlite", args.batch, args.batches, "sqlite")
        with servers.team_stack(work / "stack") as stack:
            os.environ["MLFLOW_TRACKING_URI"] = stack.tracking_uri
            (work / "server").mkdir()
            server = measure(work / "server", args.batch, args.batches, "server")
    write_result(
        "tracking",
        {
            "benchmark": "tracking",
            "metrics_per_batch": args.batch,
            "batches": args.batches,
            "pipeline_stages": len(STAGES),
            "sqlite": sqlite,
            "server_postgres_s3": server,
        },
    )


if __name__ == "__main__":
    main()
