"""The served model under load: `mlflow models serve` of the packaged models on 127.0.0.1.

    python bench/bench_serving.py                     (writes bench/results/serving.json; about 12 minutes)
    python bench/bench_serving.py --soak-seconds 20 --rounds 2 --out serving-smoke   (a quick check)

It packages --separator and --classifier (default: the pipeline's models/) into a throw-away
SQLite store, promotes them, and serves ``models:/danet-music2vec@champion`` with the README's
command, unless --model-uri (with --tracking-uri) names a model to serve instead. The request is
a real --clip-seconds mixture (the first sample rock clip with a sample noise tiled over it at
0 dB) as base64 FLAC. For each burst size (1, 2, 4, 8) it sends --rounds bursts of that many
requests at once and reports throughput (requests/s), p50/p95 latency, errors, the server's
peak memory (RSS of its process tree) and its CPU use (cores busy: why twice the requests need
not mean twice the throughput). The soak then keeps --soak-concurrency requests in flight for
--soak-seconds and reports errors and the memory at its start and end.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import write_result  # noqa: E402

from danet_music2vec import tracking  # noqa: E402
from danet_music2vec.audio import load_audio  # noqa: E402
from danet_music2vec.servers import ModelServer, model_server  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RATE = 22050


def clip(seconds: float) -> bytes:
    """A real mixture: the first sample rock clip plus a sample noise tiled over it at 0 dB, as FLAC bytes."""
    music = load_audio(sorted((REPO / "data/sample/music/rock").glob("*.ogg"))[0], RATE)
    noise = load_audio(sorted((REPO / "data/sample/noise").glob("*.flac"))[0], RATE)
    n = int(seconds * RATE)
    music = np.tile(music, int(np.ceil(n / len(music))))[:n]
    noise = np.tile(noise, int(np.ceil(n / len(noise))))[:n]
    mix = 0.5 * (music + noise * np.sqrt(np.mean(music**2) / max(np.mean(noise**2), 1e-12)))
    out = io.BytesIO()
    sf.write(out, mix.astype(np.float32), RATE, format="FLAC", subtype="PCM_16")
    return out.getvalue()


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def rss_mib(pid: int) -> float:
    return sum(p.memory_info().rss for p in tree(pid)) / 2**20


def cpu_seconds(pid: int) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in tree(pid))


class Memory:
    """Peak RSS (MiB) of the server's process tree while the block runs, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, rss_mib(pid)

    def __enter__(self) -> "Memory":
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, rss_mib(self.pid))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def invoke(url: str, body: bytes) -> tuple[float, str | None]:
    """One request: its latency in seconds and None, or the error."""
    start = time.perf_counter()
    request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            answer = json.loads(response.read())["predictions"][0]
            error = None if answer.get("genre") else "answer without a genre"
    except (urllib.error.URLError, OSError, ValueError, KeyError) as err:
        error = f"{type(err).__name__}: {str(err)[:200]}"
    return time.perf_counter() - start, error


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def burst_level(server: ModelServer, body: bytes, concurrency: int, rounds: int) -> dict[str, float]:
    latencies, errors = [], []
    cpu0 = cpu_seconds(server.pid)
    with Memory(server.pid) as memory, ThreadPoolExecutor(concurrency) as pool:
        start = time.perf_counter()
        for _ in range(rounds):  # a bounded burst: `concurrency` requests at once, all answered before the next
            for latency, error in pool.map(lambda _: invoke(server.url, body), range(concurrency)):
                latencies.append(latency)
                errors += [error] if error else []
        wall = time.perf_counter() - start
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": len(errors),
        "throughput_rps": len(latencies) / wall,
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "server_peak_rss_mib": memory.peak,
        "server_cores_busy": (cpu_seconds(server.pid) - cpu0) / wall,
        **({"first_error": errors[0]} if errors else {}),
    }


def soak(server: ModelServer, body: bytes, concurrency: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < deadline:
            latency, error = invoke(server.url, body)
            latencies.append(latency)
            errors.extend([error] if error else [])

    start_mib = rss_mib(server.pid)
    with Memory(server.pid) as memory:
        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    end_mib = rss_mib(server.pid)
    return {
        "concurrency": concurrency,
        "seconds": seconds,
        "requests": len(latencies),
        "errors": len(errors),
        "p50_s": percentile(latencies, 50),
        "p95_s": percentile(latencies, 95),
        "server_rss_start_mib": start_mib,
        "server_rss_end_mib": end_mib,
        "server_peak_rss_mib": memory.peak,
        "memory_growth_pct": 100 * (end_mib - start_mib) / start_mib,
        **({"first_error": errors[0]} if errors else {}),
    }


def packaged(workdir: Path, separator: Path, classifier: Path, max_seconds: float) -> str:
    """Package the two model files into a store under ``workdir`` and promote them; returns the store's URI."""
    import os

    from danet_music2vec.service import Limits
    from danet_music2vec.tracking.packaging import log_audio_model
    from danet_music2vec.tracking.registry import promote

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["DVC_ROOT"], os.environ["DVC_EXP_NAME"] = str(workdir), "bench-serving"
    with tracking.stage_run("package", {"noises": 1}) as run:
        log_audio_model(run, separator, classifier, Limits(max_seconds),
                        {"classification.separated.f1": 0.0, "separation.gnsdr": 0.0})  # fmt: skip
    uri = tracking.tracking_uri(workdir)
    promote("danet-music2vec", uri)
    return uri


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--separator", type=Path, default=REPO / "models/separator.pt")
    parser.add_argument("--classifier", type=Path, default=REPO / "models/music2vec.pt")
    parser.add_argument("--model-uri", help="serve this model instead (e.g. models:/danet-music2vec@champion)")
    parser.add_argument("--tracking-uri", help="with --model-uri: where a models:/ URI is resolved")
    parser.add_argument("--bursts", type=int, nargs="+", default=[1, 2, 4, 8], help="requests at once (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=8, help="bursts per level (default: %(default)s)")
    parser.add_argument("--clip-seconds", type=float, default=30.0)
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--soak-concurrency", type=int, default=2)
    parser.add_argument("--out", default="serving", help="bench/results/<out>.json (default: %(default)s)")
    args = parser.parse_args()

    body = json.dumps({"dataframe_records": [{"audio": base64.b64encode(clip(args.clip_seconds)).decode()}]}).encode()
    with tempfile.TemporaryDirectory(prefix="dm2v-serving-") as tmp:
        workdir = Path(tmp)
        if args.model_uri:
            uri, env = args.model_uri, ({"MLFLOW_TRACKING_URI": args.tracking_uri} if args.tracking_uri else {})
        else:
            uri = "models:/danet-music2vec@champion"
            env = {"MLFLOW_TRACKING_URI": packaged(workdir, args.separator, args.classifier, max(600.0, args.clip_seconds))}
        with model_server(workdir, uri, env) as server:
            idle_mib = rss_mib(server.pid)
            warmup, error = invoke(server.url, body)  # first request: lazy imports, allocator growth
            if error:
                raise SystemExit(f"the first request failed: {error}; see {workdir / 'model-server.log'}")
            levels = [burst_level(server, body, c, args.rounds) for c in args.bursts]
            soaked = soak(server, body, args.soak_concurrency, args.soak_seconds) if args.soak_seconds > 0 else None
    by_c = {level["concurrency"]: level for level in levels}
    targets = {}
    if 1 in by_c:
        targets["p95_s_at_1_under_1s"] = by_c[1]["p95_s"] < 1.0
    if 1 in by_c and 2 in by_c:
        targets["throughput_2_over_twice_1"] = by_c[2]["throughput_rps"] / (2 * by_c[1]["throughput_rps"])
    write_result(args.out, {
        "command": " ".join(["python", *sys.argv]),
        "model": uri if args.model_uri else {"separator": str(args.separator), "classifier": str(args.classifier)},
        "clip_seconds": args.clip_seconds,
        "request_bytes": len(body),
        "server_idle_rss_mib": idle_mib,
        "first_request_s": warmup,
        "bursts": levels,
        "soak": soaked,
        "targets": targets,
    })  # fmt: skip


if __name__ == "__main__":
    main()
