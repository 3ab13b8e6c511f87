"""Cost of a no-op `dvc repro` (everything up to date) and of `dvc status`, median of a few runs.

    python bench/bench_noop_repro.py      (after a full `dvc repro`; writes bench/results/noop_repro.json)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import write_result  # noqa: E402


def timed(cmd: list[str], repeats: int = 3) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0 or "Running stage" in done.stdout:
            raise SystemExit(f"{' '.join(cmd)} is not a no-op here; run `dvc repro` first:\n{done.stdout}{done.stderr}")
    return {"median_seconds": statistics.median(times), "runs": times}


def main() -> None:
    write_result("noop_repro", {"benchmark": "noop_repro", "dvc_repro": timed(["dvc", "repro"]), "dvc_status": timed(["dvc", "status"])})


if __name__ == "__main__":
    main()
