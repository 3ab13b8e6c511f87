"""download/http.py against the local HTTP server of conftest.py: mirrors, resume, checksums."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from danet_music2vec.data.download import DownloadError, Mirror, download_file
from danet_music2vec.data.download import http as dl
from tests.data.download.conftest import TIMEOUT, random_bytes, sha256_hex


def _leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.parent.iterdir())


# --- download_file -----------------------------------------------------------------------


def test_success_verifies_and_leaves_only_dest(server, tmp_path):
    data = random_bytes()
    url = server.add("/a.bin", data)
    dest = tmp_path / "dl" / "a.bin"
    out = download_file([url], dest, sha256=sha256_hex(data), md5=hashlib.md5(data).hexdigest(), progress=False,
                        timeout=TIMEOUT)
    assert out == dest and dest.read_bytes() == data
    assert _leftovers(dest) == ["a.bin"]
    assert "Range" not in server.headers_for("/a.bin")[0]


def test_cut_transfer_is_resumed_with_range_in_the_same_call(server, tmp_path):
    data = random_bytes()
    half = len(data) // 2
    url = server.add("/a.bin", data, mode="cut", cut_after=half, cuts_left=1)
    dest = tmp_path / "a.bin"
    download_file([url], dest, sha256=sha256_hex(data), progress=False, timeout=TIMEOUT)
    assert dest.read_bytes() == data
    first, second = server.headers_for("/a.bin")
    assert "Range" not in first
    assert second["Range"] == f"bytes={half}-"
    assert second["If-Range"].startswith('"')  # resumes only if the file did not change
    assert _leftovers(dest) == ["a.bin"]


def test_cut_transfer_leaves_part_and_next_call_resumes(server, tmp_path):
    data = random_bytes()
    quarter = len(data) // 4
    half = 2 * quarter
    url = server.add("/a.bin", data, mode="cut", cut_after=quarter, cuts_left=99)
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError, match="transfer cut"):
        download_file([url], dest, sha256=sha256_hex(data), progress=False, timeout=TIMEOUT, attempts=2)
    assert len(server.requests) == 2  # bounded: `attempts` requests, no more
    assert server.requests[1][1]["Range"] == f"bytes={quarter}-"
    part = tmp_path / "a.bin.part"
    assert not dest.exists() and part.stat().st_size == half
    assert part.read_bytes() == data[:half]

    server.routes["/a.bin"].mode = "ok"
    download_file([url], dest, sha256=sha256_hex(data), progress=False, timeout=TIMEOUT)
    assert server.headers_for("/a.bin")[-1]["Range"] == f"bytes={half}-"
    assert dest.read_bytes() == data
    assert _leftovers(dest) == ["a.bin"]


def test_resume_through_a_redirect_keeps_the_range(server, tmp_path):
    data = random_bytes()
    quarter = len(data) // 4
    server.add("/cdn/a.bin", data, mode="cut", cut_after=quarter, cuts_left=1)
    url = server.add("/resolve/a.bin", b"", mode="redirect", location="/cdn/a.bin")
    dest = tmp_path / "a.bin"
    download_file([url], dest, sha256=sha256_hex(data), progress=False, timeout=TIMEOUT)
    assert dest.read_bytes() == data
    assert [p for p, _ in server.requests] == ["/resolve/a.bin", "/cdn/a.bin"] * 2
    assert server.headers_for("/cdn/a.bin")[1]["Range"] == f"bytes={quarter}-"


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = random_bytes()
    url = server.add("/a.bin", data, mode="cut", cut_after=1000, cuts_left=1)
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError):
        download_file([url], dest, sha256=sha256_hex(data), progress=False, timeout=TIMEOUT, attempts=1)
    server.routes["/a.bin"].mode = "ignore_range"  # answers 200 with the whole file
    download_file([url], dest, sha256=sha256_hex(data), progress=False, timeout=TIMEOUT)
    assert "Range" in server.headers_for("/a.bin")[-1]
    assert dest.read_bytes() == data  # not the first 1000 bytes twice


def test_complete_part_from_an_interrupted_run_is_finished_via_416(server, tmp_path):
    """Killed after the last byte but before the rename: the server answers 416, the .part is verified."""
    data = random_bytes()
    url = server.add("/a.bin", data)
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(data)
    dl.write_json(tmp_path / "a.bin.part.json", {"key": dl._resume_key(Mirror(url, sha256=sha256_hex(data)))})
    download_file([url], dest, sha256=sha256_hex(data), progress=False, timeout=TIMEOUT)
    assert server.headers_for("/a.bin")[0]["Range"] == f"bytes={len(data)}-"
    assert dest.read_bytes() == data and _leftovers(dest) == ["a.bin"]


def test_part_without_matching_record_is_not_resumed(server, tmp_path):
    data = random_bytes()
    url = server.add("/a.bin", data)
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(b"junk from somewhere else")
    download_file([url], dest, sha256=sha256_hex(data), progress=False, timeout=TIMEOUT)
    assert "Range" not in server.headers_for("/a.bin")[0]
    assert dest.read_bytes() == data


@pytest.mark.parametrize("kind", ["sha256", "md5"])
def test_checksum_mismatch_leaves_nothing(server, tmp_path, kind):
    data = random_bytes()
    url = server.add("/a.bin", data, mode="wrong")
    dest = tmp_path / "a.bin"
    digest = sha256_hex(data) if kind == "sha256" else hashlib.md5(data).hexdigest()
    with pytest.raises(DownloadError, match=f"{kind} mismatch") as err:
        download_file([url], dest, progress=False, timeout=TIMEOUT, **{kind: digest})
    assert url in str(err.value)
    assert _leftovers(dest) == []  # no dest, no .part, no .part.json


def test_checksum_mismatch_falls_through_to_next_mirror(server, tmp_path):
    data = random_bytes()
    bad = server.add("/bad.bin", data, mode="wrong")
    good = server.add("/good.bin", data)
    dest = tmp_path / "a.bin"
    download_file([bad, good], dest, sha256=sha256_hex(data), progress=False, timeout=TIMEOUT)
    assert dest.read_bytes() == data
    assert [p for p, _ in server.requests] == ["/bad.bin", "/good.bin"]
    assert "Range" not in server.headers_for("/good.bin")[0]  # the bad bytes were not resumed


def test_dead_mirrors_fall_through(server, tmp_path, refused_url):
    data = random_bytes()
    missing = server.base + "/missing.bin"
    good = server.add("/good.bin", data)
    dest = tmp_path / "a.bin"
    download_file([refused_url, missing, good], dest, sha256=sha256_hex(data), progress=False, timeout=TIMEOUT)
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


def test_preplaced_archive_is_used_without_any_request(server, tmp_path):
    data = random_bytes()
    url = server.add("/a.bin", data)
    dest = tmp_path / "a.bin"
    dest.write_bytes(data)
    assert download_file([url], dest, sha256=sha256_hex(data), progress=False, timeout=TIMEOUT) == dest
    assert server.requests == []


def test_preplaced_wrong_archive_is_replaced_by_a_verified_download(server, tmp_path):
    data = random_bytes()
    url = server.add("/a.bin", data)
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"not the archive")
    download_file([url], dest, sha256=sha256_hex(data), progress=False, timeout=TIMEOUT)
    assert dest.read_bytes() == data


def test_per_mirror_checksums(server, tmp_path):
    """A re-pack with other bytes is verified against its own checksum."""
    original, repack = random_bytes(seed=1), random_bytes(seed=2)
    a = server.add("/repack.bin", repack)
    b = server.add("/original.bin", original)
    dest = tmp_path / "a.bin"
    download_file([Mirror(a, sha256=sha256_hex(repack)), Mirror(b, sha256=sha256_hex(original))], dest, progress=False,
                  timeout=TIMEOUT)
    assert dest.read_bytes() == repack
    # either archive counts as pre-placed afterwards
    dest.write_bytes(original)
    download_file([Mirror(a, sha256=sha256_hex(repack)), Mirror(b, sha256=sha256_hex(original))], dest, progress=False,
                  timeout=TIMEOUT)
    assert len(server.requests) == 1
