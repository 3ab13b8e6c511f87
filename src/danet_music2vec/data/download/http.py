"""Download one file from a list of mirrors: resume, checksum, progress, atomic rename.

``download_file`` tries the mirrors in order, resumes a cut transfer with an HTTP range
request, shows a tqdm progress bar, checks the file's sha256 / md5 and only then renames
it onto its final name, so a half or corrupt archive never sits where a later run would
trust it.

Written on the standard library's urllib rather than pooch (DESIGN.md 8b): pooch downloads
a file from its first byte and keeps nothing of a failed transfer, so a 1.2 GB GTZAN
transfer cut at 90 % would start over; here the ``.part`` file is resumed with
``Range: bytes=N-`` (and ``If-Range``, so a file that changed on the server is not
spliced). With resume, mirrors and per-mirror checksums written here, pooch would only add
a second download path, so the project does not depend on it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import socket
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from danet_music2vec.atomic import write_json

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_USER_AGENT = "danet-music2vec-downloader/0.1 (+urllib)"


class DownloadError(RuntimeError):
    """No mirror delivered a verified file; the message lists every URL, its reason and the fix."""


@dataclass(frozen=True)
class Mirror:
    """One place to get an archive, with the checksum(s) of the bytes that place serves.

    Checksums are per mirror because re-uploads are not always byte-identical to the
    original (GTZAN on Hugging Face is not the original opihi tarball). A mirror
    without any checksum is accepted on a complete transfer alone; callers then verify
    the archive's structure instead.
    """

    url: str
    sha256: str | None = None
    md5: str | None = None

    @property
    def checked(self) -> bool:
        return bool(self.sha256 or self.md5)


# --- checksums ---------------------------------------------------------------------


def file_digests(path: str | os.PathLike[str]) -> dict[str, str]:
    """sha256 and md5 of a file, read once."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            sha.update(block)
            md5.update(block)
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}


def _mismatch(digests: dict[str, str], mirror: Mirror) -> str | None:
    """None when every checksum the mirror names matches, else what differs."""
    for kind in ("sha256", "md5"):
        want = getattr(mirror, kind)
        if want and digests[kind] != want.lower():
            return f"{kind} mismatch: got {digests[kind]}, expected {want.lower()}"
    return None


# --- one mirror --------------------------------------------------------------------


class _MirrorFailed(Exception):
    """This mirror did not deliver; str() is the reason shown to the user."""


def _resume_key(mirror: Mirror) -> str:
    # A .part may be continued from any mirror that serves the same bytes: those with the
    # same checksums (HF and its mirror), or the very same URL when no checksum is known.
    if mirror.checked:
        return f"sha256={(mirror.sha256 or '').lower()} md5={(mirror.md5 or '').lower()}"
    return f"url={mirror.url}"


def _read_meta(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _total_from_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes a-b/N`` -> (a, N); ``bytes */N`` -> (None, N)."""
    if not value:
        return None, None
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value)
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect: {exc.reason}"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"


def _fetch_to_part(mirror: Mirror, part: Path, meta_path: Path, label: str, progress: bool, timeout: float,
                   attempts: int) -> None:
    """Bring ``part`` to the full length of what ``mirror`` serves, resuming where possible.

    At most ``attempts`` requests; a cut transfer keeps ``part`` (and its sidecar
    ``meta_path``) so that the next request, or the next run, continues with a Range.
    """
    key = _resume_key(mirror)
    reason = "no attempt made"
    for _ in range(max(1, attempts)):
        meta = _read_meta(meta_path)
        offset = part.stat().st_size if part.exists() and meta.get("key") == key else 0
        request = urllib.request.Request(mirror.url, headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"})
        if offset:
            request.add_header("Range", f"bytes={offset}-")
            # If the file changed on the server since the .part was started, If-Range makes
            # the server send the whole new file (200) rather than a mismatched tail.
            validator = meta.get("etag") if not str(meta.get("etag", "")).startswith("W/") else None
            validator = validator or meta.get("last_modified")
            if validator:
                request.add_header("If-Range", validator)
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and offset:
                # Nothing left to send from `offset`: the .part is complete if the server's
                # length agrees, else it is stale and we start over.
                _, total = _total_from_content_range(exc.headers.get("Content-Range"))
                exc.close()
                if total == offset:
                    return
                part.unlink(missing_ok=True)
                reason = f"HTTP 416 for a {offset}-byte partial file; restarting"
                continue
            raise _MirrorFailed(_describe(exc)) from exc
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            raise _MirrorFailed(_describe(exc)) from exc

        with response:
            status = response.status
            if offset and status == 206:
                start, total = _total_from_content_range(response.headers.get("Content-Range"))
                if start != offset:
                    part.unlink(missing_ok=True)
                    reason = f"server answered range {start} for a request from byte {offset}; restarting"
                    continue
            else:
                # 200: a fresh download, or a server that ignores Range (or whose file changed):
                # the body is the whole file, so the .part starts over.
                offset = 0
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
            write_json(meta_path, {
                "key": key,
                "url": mirror.url,
                "etag": response.headers.get("ETag"),
                "last_modified": response.headers.get("Last-Modified"),
                "total": total,
            })
            received = offset
            with (
                open(part, "ab" if offset else "wb") as out,
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                     disable=not progress, leave=False) as bar,
            ):
                try:
                    while total is None or received < total:
                        block = response.read(_CHUNK if total is None else min(_CHUNK, total - received))
                        if not block:
                            break
                        out.write(block)
                        received += len(block)
                        bar.update(len(block))
                except (OSError, http.client.HTTPException) as exc:
                    reason = f"transfer cut at byte {received} of {total or '?'} ({_describe(exc)})"
                    continue
            if total is not None and received < total:
                reason = f"transfer cut at byte {received} of {total}"
                continue
            return
    kept = f", partial file kept at {part} for the next run to resume" if part.exists() else ""
    raise _MirrorFailed(f"{reason}; gave up after {max(1, attempts)} request(s){kept}")


# --- all mirrors -------------------------------------------------------------------


def download_file(
    urls: Sequence[str | Mirror],
    dest: str | os.PathLike[str],
    sha256: str | None = None,
    md5: str | None = None,
    progress: bool = True,
    timeout: float = 30,
    attempts: int = 3,
    hint: str | None = None,
) -> Path:
    """Download ``dest`` from the first mirror that delivers a verified copy.

    ``urls`` are tried in order; a plain string uses ``sha256`` / ``md5`` of this call,
    a :class:`Mirror` carries its own. Bytes go to ``dest + ".part"``; a cut transfer is
    retried with ``Range: bytes=N-`` (``attempts`` requests per mirror) and, if it still
    fails, the ``.part`` stays for the next call to resume. A checksum mismatch deletes
    the ``.part`` and moves on; only a verified file is renamed onto ``dest``.

    If ``dest`` already exists and matches a mirror's checksum (a pre-placed archive),
    nothing is downloaded. When some mirror has no checksum, an existing ``dest`` is
    used as is (the caller verifies its structure).

    Raises :class:`DownloadError` listing every URL with its reason and ``hint``.
    """
    dest = Path(dest)
    mirrors = [m if isinstance(m, Mirror) else Mirror(str(m), sha256=sha256, md5=md5) for m in urls]
    if not mirrors:
        raise ValueError("download_file needs at least one URL")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    meta_path = dest.with_name(dest.name + ".part.json")
    failures: list[str] = []

    if dest.is_file():
        if not all(m.checked for m in mirrors):
            log.info("using existing %s (no checksum to compare; its contents are checked later)", dest)
            return dest
        digests = file_digests(dest)
        if any(_mismatch(digests, m) is None for m in mirrors):
            log.info("using existing %s (checksum verified)", dest)
            return dest
        failures.append(f"existing {dest}: sha256 {digests['sha256']} matches no mirror's checksum (left in place)")

    for mirror in mirrors:
        try:
            _fetch_to_part(mirror, part, meta_path, dest.name, progress, timeout, attempts)
        except _MirrorFailed as exc:
            failures.append(f"{mirror.url}: {exc}")
            continue
        bad = _mismatch(file_digests(part), mirror) if mirror.checked else None
        if bad:
            # Wrong bytes are never resumed or kept: delete and try the next mirror.
            part.unlink(missing_ok=True)
            meta_path.unlink(missing_ok=True)
            failures.append(f"{mirror.url}: {bad} (corrupt or changed download, deleted)")
            continue
        os.replace(part, dest)
        meta_path.unlink(missing_ok=True)
        log.info("downloaded %s from %s", dest, mirror.url)
        return dest

    fix = hint or (f"put {dest.name} into {dest.parent}/ by hand (it is checked against the checksum), or set "
                   "data.profile: local with data.music_dir and data.noise_dir")
    tried = "\n".join(f"  - {line}" for line in failures)
    raise DownloadError(f"could not download {dest.name}; tried:\n{tried}\nFix: {fix}")


__all__ = ["DownloadError", "Mirror", "download_file", "file_digests"]
