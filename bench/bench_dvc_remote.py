"""`dvc push` / `dvc pull` throughput of the workspace's pipeline outputs to a local S3 server (moto).

    python bench/bench_dvc_remote.py [STAGE ...]   (after `dvc repro`; writes bench/results/dvc_remote.json)

Pushes the outputs of the STAGEs and the stages before them (default: every stage) through a remote added to
.dvc/config.local for the run (removed afterwards; .dvc/config's `team` remote is left alone),
then pulls them into a fresh `git clone` that shares nothing with this cache. moto keeps
objects in memory on 127.0.0.1, so the figures bound DVC's own cost, not a network's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import write_result  # noqa: E402

from danet_music2vec import servers  # noqa: E402

REMOTE = "bench-s3"
BUCKET = "bench"


def dvc(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(["dvc", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"dvc {' '.join(args)} failed in {cwd}:\n{done.stdout}{done.stderr}")
    return time.perf_counter() - start


def folder_bytes(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def add_remote(repo: Path, endpoint: str) -> None:
    dvc(["remote", "add", "--local", "-f", REMOTE, f"s3://{BUCKET}/dvc"], repo)
    dvc(["remote", "modify", "--local", REMOTE, "endpointurl", endpoint], repo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="*", help="push and pull these stages' outputs and their upstream (default: all)")
    args = parser.parse_args()
    targets = ["--with-deps", *args.stages] if args.stages else []
    repo = Path.cwd()
    local_config = repo / ".dvc" / "config.local"
    had_local_config = local_config.exists()
    with tempfile.TemporaryDirectory(prefix="bench-dvc-remote-") as tmp, servers.s3(Path(tmp), BUCKET) as s3:
        os.environ.update(s3.env())
        add_remote(repo, s3.endpoint_url)
        try:
            push = dvc(["push", "-r", REMOTE, *targets], repo)
        finally:
            dvc(["remote", "remove", "--local", REMOTE], repo)
            if not had_local_config and not local_config.read_text().strip():
                local_config.unlink()
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
        add_remote(clone, s3.endpoint_url)
        pull = dvc(["pull", "-r", REMOTE, *targets], clone)
        size, files = folder_bytes(clone / ".dvc" / "cache")
    mib = size / 2**20
    write_result(
        "dvc_remote",
        {
            "benchmark": "dvc_remote",
            "stages": args.stages or "all",
            "cache_mib": mib,
            "cache_files": files,
            "push_seconds": push,
            "pull_seconds": pull,
            "push_mib_per_s": mib / push,
            "pull_mib_per_s": mib / pull,
        },
    )


if __name__ == "__main__":
    main()
