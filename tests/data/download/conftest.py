"""A real HTTP server on 127.0.0.1 for the download tests (no internet needed).

The server supports Range requests and can be told, per path, to cut a transfer after
N bytes, serve wrong bytes, ignore Range, or answer 404; a closed port stands in for a
host that refuses connections.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

TIMEOUT = 5.0


@dataclass
class Route:
    data: bytes
    mode: str = "ok"  # ok | cut | wrong | ignore_range | 404 | redirect
    location: str = ""  # mode redirect: path answered with 302 to (as Hugging Face does to its CDN)
    cut_after: int = 0  # mode cut: bytes of the body sent before the connection closes
    cuts_left: int = 1  # mode cut: how many responses are cut (later ones are whole)


@dataclass
class ServerState:
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    base: str = ""

    def add(self, path: str, data: bytes, **kw) -> str:
        self.routes[path] = Route(data, **kw)
        return self.base + path

    def headers_for(self, path: str) -> list[dict[str, str]]:
        return [h for p, h in self.requests if p == path]


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so "close after N bytes" is a plain return.
    protocol_version = "HTTP/1.0"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        state: ServerState = self.server.state  # type: ignore[attr-defined]
        state.requests.append((self.path, dict(self.headers)))
        route = state.routes.get(self.path)
        if route is None or route.mode == "404":
            self.send_error(404, "Not Found")
            return
        if route.mode == "redirect":
            self.send_response(302)
            self.send_header("Location", route.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = bytes(b ^ 0x5A for b in route.data) if route.mode == "wrong" else route.data
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        start = 0
        rng = self.headers.get("Range")
        if rng and route.mode != "ignore_range":
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if route.mode == "cut" and route.cuts_left > 0:
            route.cuts_left -= 1
            self.wfile.write(payload[: route.cut_after])
            self.wfile.flush()
            return  # connection closes with the body short of Content-Length
        self.wfile.write(payload)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    state = ServerState(base=f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def refused_url() -> str:
    """A URL on a port nothing listens on: connection refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/genres.tar.gz"


def random_bytes(n: int = 300_000, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
