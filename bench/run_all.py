"""Run every benchmark (each writes bench/results/<name>.json). `make bench` calls this.

Needs the pipeline's outputs (`make repro` first). Benchmarks are run on purpose, never in tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# bench_paper_scale reads bench_stages' results, so it runs after it.
SCRIPTS = [
    "bench_features.py", "bench_separation.py", "bench_denoise.py", "bench_training.py", "bench_noop_repro.py", "bench_stages.py",
    "bench_paper_scale.py", "bench_tracking.py", "bench_dvc_remote.py", "bench_scoring_workers.py",
    "bench_bss_eval.py", "bench_cost_curve.py",
]  # fmt: skip


def main() -> None:
    failed = []
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        if subprocess.run([sys.executable, str(HERE / script)]).returncode != 0:
            failed.append(script)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
