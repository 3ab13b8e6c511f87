"""Local stand-ins for a team's servers, all pip-installed: PostgreSQL, S3 and an MLflow tracking server.

The tests and benchmarks start them on 127.0.0.1 (PostgreSQL on a Unix socket only),
on free ports, and always stop them; ``python -m danet_music2vec.servers <dir>`` starts
the same stack for trying README's "Team setup" on one machine:

- PostgreSQL from ``pgserver`` (the server binaries ship in the wheel);
- S3 from moto's server mode (``moto[server]``), a bucket created in it;
- ``mlflow server`` with the PostgreSQL backend store and ``--artifacts-destination
  s3://...``: it proxies artifacts, so its clients need no S3 credentials.

This module starts processes and talks HTTP; it never imports mlflow (the tracking package does).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
# moto accepts any credentials; these name the fake account so logs say what they are.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def env(self) -> dict[str, str]:
        """Environment for S3 clients of this server (boto3, DVC's s3 remote, ``mlflow server``)."""
        return S3_CREDENTIALS | {"AWS_ENDPOINT_URL": self.endpoint_url, "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url}

    def client(self) -> Any:
        """A boto3 S3 client of this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
        )


@dataclass(frozen=True)
class TeamStack:
    """What the clients of the stack need: the tracking URI and the S3 endpoint for DVC."""

    tracking_uri: str
    s3: S3Server
    bucket: str
    postgres_uri: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}; see {log}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # answering, even if not with 200
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s; see {log}")


@contextmanager
def _process(args: list[str], log: Path, env: Mapping[str, str], ready_url: str, timeout_s: float) -> Iterator[int]:
    """Run ``args`` until the block ends (yields its pid); its own process group, so its workers stop with it."""
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=dict(env), start_new_session=True)
    try:
        _wait_http(ready_url, process, log, timeout_s)
        yield process.pid
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(5)  # uvicorn waits for idle keep-alive clients; no state is lost by stopping it
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextmanager
def postgres() -> Iterator[str]:
    """A fresh, throw-away PostgreSQL cluster; yields its SQLAlchemy URI, stops and deletes it afterwards."""
    import pgserver

    # pgserver listens on a Unix socket only (no TCP port at all). As root it runs postgres as
    # its own `pgserver` user (postgres refuses root), which must reach the data folder: a
    # folder of our own, since pytest resets its shared /tmp/pytest-of-<user> to 0700.
    parent = Path(tempfile.mkdtemp(prefix="dm2v-postgres-"))
    server = pgserver.get_server(parent / "pgdata", cleanup_mode="delete")
    try:
        server.psql("CREATE DATABASE mlflow;")
        yield server.get_uri("mlflow").replace("postgresql://", "postgresql+psycopg2://", 1)
    finally:
        server.cleanup()
        shutil.rmtree(parent, ignore_errors=True)


@contextmanager
def s3(workdir: Path, bucket: str | None = None) -> Iterator[S3Server]:
    """moto's S3 server on a free port of 127.0.0.1 (data in memory), with ``bucket`` created."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    args = [str(Path(sys.executable).parent / "moto_server"), "-H", HOST, "-p", str(port)]
    with _process(args, workdir / "moto.log", os.environ | S3_CREDENTIALS, f"{url}/moto-api/", timeout_s=60):
        server = S3Server(url)
        if bucket:
            server.client().create_bucket(Bucket=bucket)
        yield server


@contextmanager
def mlflow_server(workdir: Path, backend_uri: str, s3_server: S3Server, artifacts: str, workers: int = 1) -> Iterator[str]:
    """``mlflow server`` on a free port of 127.0.0.1, proxying artifacts to ``artifacts`` (s3://...); yields its URL."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    args = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", backend_uri,
        "--artifacts-destination", artifacts,
        "--host", HOST, "--port", str(port), "--workers", str(workers),
    ]  # fmt: skip
    env = os.environ | s3_server.env()
    env.pop("MLFLOW_TRACKING_URI", None)
    with _process(args, workdir / "mlflow-server.log", env, f"{url}/health", timeout_s=180):
        yield url


@contextmanager
def mlflow_ui(workdir: Path, backend_uri: str) -> Iterator[str]:
    """``mlflow server`` on a free port of 127.0.0.1 over a local store (``sqlite:///<repo>/mlflow.db``), its
    artifacts read where the runs put them: what ``mlflow ui`` serves. Yields its URL."""
    port = free_port()
    url = f"http://{HOST}:{port}"
    args = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", backend_uri,
            "--host", HOST, "--port", str(port), "--workers", "1"]  # fmt: skip
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    with _process(args, workdir / "mlflow-ui.log", env, f"{url}/health", timeout_s=300):
        yield url


@dataclass(frozen=True)
class ModelServer:
    """A running ``mlflow models serve``: its URL and process id (the root of its process tree, for memory figures)."""

    url: str
    pid: int


@contextmanager
def model_server(workdir: Path, model_uri: str, env: Mapping[str, str] | None = None, timeout_s: float = 180) -> Iterator[ModelServer]:
    """``mlflow models serve -m model_uri --env-manager local`` on a free port of 127.0.0.1 (the README's command).

    ``env`` adds to this process's environment (e.g. ``MLFLOW_TRACKING_URI``, where a
    ``models:/`` URI is resolved). The server's log is ``workdir/model-server.log``.
    """
    port = free_port()
    url = f"http://{HOST}:{port}"
    args = [
        str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", model_uri,
        "--env-manager", "local", "-h", HOST, "-p", str(port),
    ]  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    # The registry that resolves models:/ follows the tracking URI, not a MLFLOW_REGISTRY_URI that an earlier
    # mlflow call exported into this process's environment (mlflow.set_registry_uri does).
    inherited = {k: v for k, v in os.environ.items() if k != "MLFLOW_REGISTRY_URI"}
    # mlflow starts `uvicorn` by name: the environment's own, also when its bin/ is not on PATH.
    inherited["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    with _process(args, workdir / "model-server.log", inherited | dict(env or {}), f"{url}/ping", timeout_s) as pid:
        yield ModelServer(url, pid)


@contextmanager
def team_stack(workdir: Path, bucket: str = "team") -> Iterator[TeamStack]:
    """PostgreSQL + S3 + an MLflow server on both: MLflow artifacts under ``s3://<bucket>/mlflow``."""
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        db = stack.enter_context(postgres())
        s3_server = stack.enter_context(s3(workdir, bucket))
        url = stack.enter_context(mlflow_server(workdir, db, s3_server, f"s3://{bucket}/mlflow"))
        yield TeamStack(tracking_uri=url, s3=s3_server, bucket=bucket, postgres_uri=db)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start a local PostgreSQL + S3 + MLflow server stack until Ctrl-C.")
    parser.add_argument("workdir", type=Path, help="folder for the server logs")
    parser.add_argument("--bucket", default="team", help="S3 bucket for MLflow artifacts and the DVC remote")
    args = parser.parse_args(argv)
    # SIGTERM (and SIGINT, also where a shell started us in the background) stops the servers too.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: sys.exit(128 + number))
    with team_stack(args.workdir.resolve(), args.bucket) as stack:
        print(f"export MLFLOW_TRACKING_URI={stack.tracking_uri}")
        for key, value in stack.s3.env().items():
            print(f"export {key}={value}")
        print(f"# DVC remote: s3://{stack.bucket}/dvc   (Ctrl-C stops the servers)", flush=True)
        signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
