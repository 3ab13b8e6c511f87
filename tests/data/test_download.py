"""download.py against a real HTTP server on 127.0.0.1 (no internet needed).

The server supports Range requests and can be told, per path, to cut a transfer after
N bytes, serve wrong bytes, ignore Range, or answer 404; a closed port stands in for a
host that refuses connections.
"""

from __future__ import annotations

import hashlib
import io
import re
import socket
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from danet_music2vec.data import download as dl
from danet_music2vec.data.download import (
    ArchiveError,
    DownloadError,
    Mirror,
    download_file,
    fetch_esc50,
    fetch_gtzan,
)

TIMEOUT = 5.0


# --- local HTTP server -----------------------------------------------------------------


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


def _payload(n: int = 300_000, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir())


# --- download_file -----------------------------------------------------------------------


def test_success_verifies_and_leaves_only_dest(server, tmp_path):
    data = _payload()
    url = server.add("/a.bin", data)
    dest = tmp_path / "dl" / "a.bin"
    out = download_file([url], dest, sha256=_sha(data), md5=hashlib.md5(data).hexdigest(), progress=False,
                        timeout=TIMEOUT)
    assert out == dest and dest.read_bytes() == data
    assert _leftovers(dest) == ["a.bin"]
    assert "Range" not in server.headers_for("/a.bin")[0]


def test_cut_transfer_is_resumed_with_range_in_the_same_call(server, tmp_path):
    data = _payload()
    half = len(data) // 2
    url = server.add("/a.bin", data, mode="cut", cut_after=half, cuts_left=1)
    dest = tmp_path / "a.bin"
    download_file([url], dest, sha256=_sha(data), progress=False, timeout=TIMEOUT)
    assert dest.read_bytes() == data
    first, second = server.headers_for("/a.bin")
    assert "Range" not in first
    assert second["Range"] == f"bytes={half}-"
    assert second["If-Range"].startswith('"')  # resumes only if the file did not change
    assert _leftovers(dest) == ["a.bin"]


def test_cut_transfer_leaves_part_and_next_call_resumes(server, tmp_path):
    data = _payload()
    quarter = len(data) // 4
    half = 2 * quarter
    url = server.add("/a.bin", data, mode="cut", cut_after=quarter, cuts_left=99)
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="transfer cut"):
        download_file([url], dest, sha256=_sha(data), progress=False, timeout=TIMEOUT, attempts=2)
    assert len(server.requests) == 2  # bounded: `attempts` requests, no more
    assert server.requests[1][1]["Range"] == f"bytes={quarter}-"
    part = tmp_path / "a.bin.part"
    assert not dest.exists() and part.stat().st_size == half
    assert part.read_bytes() == data[:half]

    server.routes["/a.bin"].mode = "ok"
    download_file([url], dest, sha256=_sha(data), progress=False, timeout=TIMEOUT)
    assert server.headers_for("/a.bin")[-1]["Range"] == f"bytes={half}-"
    assert dest.read_bytes() == data
    assert _leftovers(dest) == ["a.bin"]


def test_resume_through_a_redirect_keeps_the_range(server, tmp_path):
    data = _payload()
    quarter = len(data) // 4
    server.add("/cdn/a.bin", data, mode="cut", cut_after=quarter, cuts_left=1)
    url = server.add("/resolve/a.bin", b"", mode="redirect", location="/cdn/a.bin")
    dest = tmp_path / "a.bin"
    download_file([url], dest, sha256=_sha(data), progress=False, timeout=TIMEOUT)
    assert dest.read_bytes() == data
    assert [p for p, _ in server.requests] == ["/resolve/a.bin", "/cdn/a.bin"] * 2
    assert server.headers_for("/cdn/a.bin")[1]["Range"] == f"bytes={quarter}-"


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = _payload()
    url = server.add("/a.bin", data, mode="cut", cut_after=1000, cuts_left=1)
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError):
        download_file([url], dest, sha256=_sha(data), progress=False, timeout=TIMEOUT, attempts=1)
    server.routes["/a.bin"].mode = "ignore_range"  # answers 200 with the whole file
    download_file([url], dest, sha256=_sha(data), progress=False, timeout=TIMEOUT)
    assert "Range" in server.headers_for("/a.bin")[-1]
    assert dest.read_bytes() == data  # not the first 1000 bytes twice


def test_complete_part_from_an_interrupted_run_is_finished_via_416(server, tmp_path):
    """Killed after the last byte but before the rename: the server answers 416, the .part is verified."""
    data = _payload()
    url = server.add("/a.bin", data)
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(data)
    dl.write_json(tmp_path / "a.bin.part.json", {"key": dl._resume_key(Mirror(url, sha256=_sha(data)))})
    download_file([url], dest, sha256=_sha(data), progress=False, timeout=TIMEOUT)
    assert server.headers_for("/a.bin")[0]["Range"] == f"bytes={len(data)}-"
    assert dest.read_bytes() == data and _leftovers(dest) == ["a.bin"]


def test_part_without_matching_record_is_not_resumed(server, tmp_path):
    data = _payload()
    url = server.add("/a.bin", data)
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(b"junk from somewhere else")
    download_file([url], dest, sha256=_sha(data), progress=False, timeout=TIMEOUT)
    assert "Range" not in server.headers_for("/a.bin")[0]
    assert dest.read_bytes() == data


@pytest.mark.parametrize("kind", ["sha256", "md5"])
def test_checksum_mismatch_leaves_nothing(server, tmp_path, kind):
    data = _payload()
    url = server.add("/a.bin", data, mode="wrong")
    dest = tmp_path / "a.bin"
    digest = _sha(data) if kind == "sha256" else hashlib.md5(data).hexdigest()
    with pytest.raises(DownloadError, match=f"{kind} mismatch") as err:
        download_file([url], dest, progress=False, timeout=TIMEOUT, **{kind: digest})
    assert url in str(err.value)
    assert _leftovers(dest) == []  # no dest, no .part, no .part.json


def test_checksum_mismatch_falls_through_to_next_mirror(server, tmp_path):
    data = _payload()
    bad = server.add("/bad.bin", data, mode="wrong")
    good = server.add("/good.bin", data)
    dest = tmp_path / "a.bin"
    download_file([bad, good], dest, sha256=_sha(data), progress=False, timeout=TIMEOUT)
    assert dest.read_bytes() == data
    assert [p for p, _ in server.requests] == ["/bad.bin", "/good.bin"]
    assert "Range" not in server.headers_for("/good.bin")[0]  # the bad bytes were not resumed


def test_dead_mirrors_fall_through(server, tmp_path, refused_url):
    data = _payload()
    missing = server.base + "/missing.bin"
    good = server.add("/good.bin", data)
    dest = tmp_path / "a.bin"
    download_file([refused_url, missing, good], dest, sha256=_sha(data), progress=False, timeout=TIMEOUT)
    assert dest.read_bytes() == data
    assert [p for p, _ in server.requests] == ["/missing.bin", "/good.bin"]


def test_all_mirrors_dead_names_every_url_and_the_fix(server, tmp_path, refused_url):
    missing = server.base + "/missing.bin"
    dest = tmp_path / "downloads" / "genres.tar.gz"
    with pytest.raises(DownloadError) as err:
        download_file([refused_url, missing], dest, sha256="0" * 64, progress=False, timeout=TIMEOUT)
    msg = str(err.value)
    assert refused_url in msg and "cannot connect" in msg
    assert missing in msg and "HTTP 404" in msg
    assert "genres.tar.gz" in msg and str(dest.parent) in msg and "data.profile: local" in msg
    assert _leftovers(dest) == []


def test_fetch_hint_names_archive_and_local_profile(refused_url, tmp_path):
    with pytest.raises(DownloadError) as err:
        fetch_gtzan(tmp_path / "downloads", progress=False, urls=[refused_url], timeout=TIMEOUT)
    msg = str(err.value)
    assert "download genres.tar.gz by hand" in msg and str(tmp_path / "downloads") in msg
    assert "data.profile: local" in msg and "data.music_dir" in msg


def test_preplaced_archive_is_used_without_any_request(server, tmp_path):
    data = _payload()
    url = server.add("/a.bin", data)
    dest = tmp_path / "a.bin"
    dest.write_bytes(data)
    assert download_file([url], dest, sha256=_sha(data), progress=False, timeout=TIMEOUT) == dest
    assert server.requests == []


def test_preplaced_wrong_archive_is_replaced_by_a_verified_download(server, tmp_path):
    data = _payload()
    url = server.add("/a.bin", data)
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"not the archive")
    download_file([url], dest, sha256=_sha(data), progress=False, timeout=TIMEOUT)
    assert dest.read_bytes() == data


def test_per_mirror_checksums(server, tmp_path):
    """A re-pack with other bytes is verified against its own checksum."""
    original, repack = _payload(seed=1), _payload(seed=2)
    a = server.add("/repack.bin", repack)
    b = server.add("/original.bin", original)
    dest = tmp_path / "a.bin"
    download_file([Mirror(a, sha256=_sha(repack)), Mirror(b, sha256=_sha(original))], dest, progress=False,
                  timeout=TIMEOUT)
    assert dest.read_bytes() == repack
    # either archive counts as pre-placed afterwards
    dest.write_bytes(original)
    download_file([Mirror(a, sha256=_sha(repack)), Mirror(b, sha256=_sha(original))], dest, progress=False,
                  timeout=TIMEOUT)
    assert len(server.requests) == 1


# --- archives in the real layouts --------------------------------------------------------


def _wav_bytes(seconds: float, sr: int, seed: int) -> bytes:
    buf = io.BytesIO()
    tone = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr)).astype(np.float32)
    sf.write(buf, tone, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


GENRES = ("blues", "rock")


def _gtzan_tar(extra: dict[str, bytes] | None = None) -> bytes:
    files = {f"genres/{g}/{g}.0000{i}.wav": _wav_bytes(0.2, 22050, seed=i) for g in GENRES for i in range(2)}
    files["genres/bextract_single.mf"] = b"genres/blues/blues.00000.wav\tblues\n"
    files["genres/blues/._blues.00000.wav"] = b"\x00\x05\x16\x07 AppleDouble junk"
    files.update(extra or {})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


ESC_ROWS = [("1-100-A-0.wav", 1, 0, "dog"), ("2-200-A-1.wav", 2, 1, "rooster"), ("5-300-B-0.wav", 5, 0, "dog")]


def _esc50_zip(top: str = "ESC-50-master", rows=ESC_ROWS, extra_audio: tuple[str, ...] = (),
               extra_members: dict[str, bytes] | None = None) -> bytes:
    csv = "filename,fold,target,category,esc10,src_file,take\n" + "".join(
        f"{f},{fold},{t},{c},False,{i},A\n" for i, (f, fold, t, c) in enumerate(rows))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{top}/", b"")
        zf.writestr(f"{top}/README.md", b"# ESC-50\n")
        zf.writestr(f"{top}/LICENSE", b"CC BY-NC 3.0\n")
        zf.writestr(f"{top}/meta/esc50.csv", csv)
        for i, (name, *_rest) in enumerate(rows):
            zf.writestr(f"{top}/audio/{name}", _wav_bytes(0.1, 44100, seed=10 + i))
        for name in extra_audio:
            zf.writestr(f"{top}/audio/{name}", _wav_bytes(0.1, 44100, seed=99))
        for name, content in (extra_members or {}).items():
            zf.writestr(name, content)
    return buf.getvalue()


def test_fetch_gtzan_end_to_end_and_reuse(server, tmp_path):
    archive = _gtzan_tar()
    url = server.add("/genres.tar.gz", archive, mode="cut", cut_after=len(archive) // 3)
    downloads = tmp_path / "downloads"
    genres = fetch_gtzan(downloads, progress=False, urls=[url], sha256=_sha(archive), timeout=TIMEOUT)
    assert genres == downloads / "genres"
    wavs = sorted(p.relative_to(genres).as_posix() for p in genres.rglob("*.wav"))
    assert wavs == [f"{g}/{g}.0000{i}.wav" for g in GENRES for i in range(2)]  # no ._ junk
    audio, sr = sf.read(genres / "rock" / "rock.00001.wav")
    assert sr == 22050 and len(audio) == int(0.2 * 22050)
    assert (downloads / "genres.tar.gz").read_bytes() == archive
    assert not list(downloads.glob(".genres.*")) and not list(downloads.glob("*.part*"))
    assert "Range" in server.headers_for("/genres.tar.gz")[-1]  # the cut was resumed

    # A complete extraction is reused: no request, the archive is not even read.
    n = len(server.requests)
    (downloads / "genres.tar.gz").unlink()
    assert fetch_gtzan(downloads, progress=False, urls=[url], timeout=TIMEOUT) == genres
    assert len(server.requests) == n


def test_fetch_gtzan_interrupted_extraction_restarts_cleanly(server, tmp_path):
    archive = _gtzan_tar()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "genres.tar.gz").write_bytes(archive)  # pre-placed
    stale = downloads / ".genres.abc123.tmp" / "genres" / "blues"
    stale.mkdir(parents=True)
    (stale / "blues.00000.wav").write_bytes(b"half written")
    genres = fetch_gtzan(downloads, progress=False, urls=[server.base + "/unused"], sha256=_sha(archive),
                         timeout=TIMEOUT)
    assert server.requests == []
    assert not stale.exists() and sorted(p.name for p in downloads.iterdir()) == ["genres", "genres.tar.gz"]
    assert sf.read(genres / "blues" / "blues.00000.wav")[1] == 22050


def test_fetch_gtzan_rejects_path_traversal(tmp_path):
    archive = _gtzan_tar(extra={"../evil.wav": b"owned"})
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "genres.tar.gz").write_bytes(archive)
    with pytest.raises(ArchiveError, match="unsafe member"):
        fetch_gtzan(downloads, progress=False, urls=["http://127.0.0.1:9/unused"], sha256=_sha(archive))
    assert not (tmp_path / "evil.wav").exists()
    assert sorted(p.name for p in downloads.iterdir()) == ["genres.tar.gz"]


def test_fetch_gtzan_wrong_layout(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("something/else.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "genres.tar.gz").write_bytes(buf.getvalue())
    with pytest.raises(ArchiveError, match=r"genres/<genre>/<genre>\.000NN"):
        fetch_gtzan(downloads, progress=False, urls=["http://127.0.0.1:9/unused"])
    assert sorted(p.name for p in downloads.iterdir()) == ["genres.tar.gz"]


def test_fetch_esc50_end_to_end_and_reuse(server, tmp_path):
    archive = _esc50_zip(top=f"ESC-50-{dl.ESC50_COMMIT}", extra_members={"__MACOSX/._x": b"junk"})
    url = server.add("/esc50.zip", archive)
    downloads = tmp_path / "downloads"
    audio, csv = fetch_esc50(downloads, progress=False, urls=[url], sha256=_sha(archive), timeout=TIMEOUT)
    assert audio == downloads / "ESC-50" / "audio" and csv == downloads / "ESC-50" / "meta" / "esc50.csv"
    meta = pd.read_csv(csv)
    assert list(meta["filename"]) == [r[0] for r in ESC_ROWS]
    assert sorted(p.name for p in audio.iterdir()) == sorted(r[0] for r in ESC_ROWS)
    assert sf.read(audio / "1-100-A-0.wav")[1] == 44100
    assert (downloads / "ESC-50" / "LICENSE").is_file()  # license notes travel with the data
    assert not (downloads / "__MACOSX").exists()

    n = len(server.requests)
    assert fetch_esc50(downloads, progress=False, urls=[url], timeout=TIMEOUT) == (audio, csv)
    assert len(server.requests) == n


def test_fetch_esc50_without_checksum_verifies_structure(server, tmp_path):
    # A CSV row whose clip is missing: rejected, nothing left behind but the archive.
    archive = _esc50_zip(rows=ESC_ROWS + [("3-400-A-2.wav", 3, 2, "pig")])
    with zipfile.ZipFile(io.BytesIO(archive)) as zf, zipfile.ZipFile(buf := io.BytesIO(), "w") as out:
        for info in zf.infolist():
            if not info.filename.endswith("3-400-A-2.wav"):
                out.writestr(info, zf.read(info))
    url = server.add("/esc50.zip", buf.getvalue())
    downloads = tmp_path / "downloads"
    with pytest.raises(ArchiveError, match="3-400-A-2.wav"):
        fetch_esc50(downloads, progress=False, urls=[url], timeout=TIMEOUT)
    assert sorted(p.name for p in downloads.iterdir()) == ["ESC-50-master.zip"]

    # An audio file the CSV does not list is rejected as well.
    (downloads / "ESC-50-master.zip").write_bytes(_esc50_zip(extra_audio=("9-999-A-9.wav",)))
    with pytest.raises(ArchiveError, match="not listed"):
        fetch_esc50(downloads, progress=False, urls=[url], timeout=TIMEOUT)


def test_fetch_esc50_rejects_zip_path_traversal(tmp_path):
    archive = _esc50_zip(extra_members={"ESC-50-master/../../evil.wav": b"owned"})
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "ESC-50-master.zip").write_bytes(archive)
    with pytest.raises(ArchiveError, match="unsafe member"):
        fetch_esc50(downloads, progress=False, urls=["http://127.0.0.1:9/unused"])
    assert not (tmp_path / "evil.wav").exists()
    assert sorted(p.name for p in downloads.iterdir()) == ["ESC-50-master.zip"]


# --- built-in archive descriptions -------------------------------------------------------


def test_builtin_mirror_lists():
    gtzan = dl.GTZAN_ARCHIVE
    assert gtzan.filename == "genres.tar.gz"
    assert gtzan.mirrors[-1].url == "http://opihi.cs.uvic.ca/sound/genres.tar.gz"  # the original, last
    assert len(gtzan.mirrors) >= 3
    assert all(m.sha256 and re.fullmatch(r"[0-9a-f]{64}", m.sha256) for m in gtzan.mirrors)
    assert re.fullmatch(r"[0-9a-f]{32}", dl.GTZAN_MD5)

    esc = dl.ESC50_ARCHIVE
    assert all(dl.ESC50_COMMIT in m.url for m in esc.mirrors)  # commit-pinned, content never moves
    assert esc.mirrors[0].sha256 and re.fullmatch(r"[0-9a-f]{64}", esc.mirrors[0].sha256)
    assert not esc.mirrors[-1].checked  # structure-verified fallback if GitHub re-generates the zip
