"""Download and unpack the ``full`` profile's archives: GTZAN (music) and ESC-50 (noise).

``download_file`` tries a list of mirrors in order, resumes a cut transfer with an HTTP
range request, shows a tqdm progress bar, checks the archive's sha256 / md5 and only then
renames it onto its final name, so a half or corrupt archive never sits where a later
run would trust it. ``fetch_gtzan`` / ``fetch_esc50`` add extraction into a temporary
folder that is renamed into place once complete.

Written on the standard library's urllib rather than pooch (which the project also
depends on): pooch always downloads a file from its first byte, so a 1.2 GB GTZAN
transfer cut at 90 % would start over; here the ``.part`` file is resumed with
``Range: bytes=N-``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd
from tqdm import tqdm

from danet_music2vec.atomic import write_json

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_USER_AGENT = "danet-music2vec-downloader/0.1 (+urllib)"


class DownloadError(RuntimeError):
    """No mirror delivered a verified file; the message lists every URL, its reason and the fix."""


class ArchiveError(ValueError):
    """An archive is corrupt, unsafe or not in the expected layout; the message names it and the fix."""


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


@dataclass(frozen=True)
class ArchiveSpec:
    """What to download: the local file name and the mirrors, best first."""

    filename: str
    mirrors: tuple[Mirror, ...]
    hint: str  # what a user can do when no mirror works


# --- GTZAN -------------------------------------------------------------------------
# The original host (opihi.cs.uvic.ca) has been dead since about 2022
# (mir-dataset-loaders/mirdata issues #549 and #659; music-classification/tutorial #44).
# Current public copies, found by searching public code and docs:
#  * Hugging Face dataset marsyas/gtzan, file data/genres.tar.gz (1.23 GB, added in commit
#    7031b10 and unchanged since, per huggingface.co/datasets/marsyas/gtzan/commits/main).
#    Public, no login. sha256 b28cc067... as pinned by public projects that download it (a
#    `genre_cnn` download script, and a GTZAN evaluation-manifest builder that also pins
#    dataset revision d2146561ecc7df707d9e6b8318885fe6a39668a2). Its sha256 differs from
#    the original tarball's, so it is a re-pack; it reportedly holds
#    genres/<genre>/<genre>.000NN.wav plus macOS "._*" resource files (skipped on extraction).
#  * hf-mirror.com: a public mirror of the Hugging Face hub (same path, same bytes).
#  * The Internet Archive's copy of the original URL (snapshot 20220328223413, used by a
#    public torchaudio fork); "id_" asks for the raw bytes.
#  * The original URL, last. Its sha256 24347e02... is in torchaudio's datasets/gtzan.py
#    (_CHECKSUMS, checked in the installed torchaudio 2.11); its md5
#    5b3d6dddb579ab49814ab86dba69e7c7 is the one in older torchaudio and in mirdata's
#    gtzan_genre.py. Only the sha256 is enforced, to depend on one record.
# Kaggle's "GTZAN dataset" is another copy, but needs a login and has another layout
# (genres_original/); point data.music_dir at it with data.profile: local instead.
_GTZAN_HF_SHA256 = "b28cc067ff6199bd826f5d1a6931458586d64acae7f44b2e882b7a97af057531"
_GTZAN_ORIGINAL_SHA256 = "24347e0223d2ba798e0a558c4c172d9d4a19c00bb7963fe055d183dadb4ef2c6"
GTZAN_MD5 = "5b3d6dddb579ab49814ab86dba69e7c7"  # of the original archive (mirdata, old torchaudio)
GTZAN_ARCHIVE = ArchiveSpec(
    filename="genres.tar.gz",
    mirrors=(
        Mirror(
            "https://huggingface.co/datasets/marsyas/gtzan/resolve/main/data/genres.tar.gz",
            sha256=_GTZAN_HF_SHA256,
        ),
        Mirror("https://hf-mirror.com/datasets/marsyas/gtzan/resolve/main/data/genres.tar.gz", sha256=_GTZAN_HF_SHA256),
        Mirror(
            "https://web.archive.org/web/20220328223413id_/http://opihi.cs.uvic.ca/sound/genres.tar.gz",
            sha256=_GTZAN_ORIGINAL_SHA256,
        ),
        Mirror("http://opihi.cs.uvic.ca/sound/genres.tar.gz", sha256=_GTZAN_ORIGINAL_SHA256),
    ),
    hint=(
        "download genres.tar.gz by hand (e.g. from https://huggingface.co/datasets/marsyas/gtzan, "
        "folder data/) into {dir}/ and rerun, or set data.profile: local with data.music_dir "
        "pointing at a folder of genre sub-folders"
    ),
)

# --- ESC-50 ------------------------------------------------------------------------
# The data set lives in the GitHub repository karolpiczak/ESC-50 (no release assets).
# Pinned to commit 33c8ce9eb2cf0b1c2f8bcf322eb349b6be34dbb6 (the head of master, "latest
# commit per November 24, 2025" in a public loader), so the content never moves. The archive GitHub generates for it was recorded by a public benchmark script as
# 645,832,161 bytes, sha256 661183a6...; another public loader records md5
# 071b44018315e034b2c6e8064543d19c for the same URL (not enforced: one record suffices,
# and the two could not be cross-checked here). GitHub generates archives on the fly and
# does not promise byte-stable output, so the second mirror is the same pinned commit
# without a checksum: fetch_esc50 then verifies the structure (every clip listed in
# meta/esc50.csv is present, and nothing else) before using it. (If GitHub ever re-generates
# the zip, that costs a second download; github.com/.../archive redirects to
# codeload.github.com, so listing codeload as well would add no independent copy.)
ESC50_COMMIT = "33c8ce9eb2cf0b1c2f8bcf322eb349b6be34dbb6"
_ESC50_SHA256 = "661183a6f53ef04f12c9bd618fed0ddc1713280d6c94a5a5431e844ba6f6a21f"
ESC50_ARCHIVE = ArchiveSpec(
    filename="ESC-50-master.zip",
    mirrors=(
        Mirror(f"https://github.com/karolpiczak/ESC-50/archive/{ESC50_COMMIT}.zip", sha256=_ESC50_SHA256),
        Mirror(f"https://github.com/karolpiczak/ESC-50/archive/{ESC50_COMMIT}.zip"),
    ),
    hint=(
        "download https://github.com/karolpiczak/ESC-50/archive/master.zip by hand, save it as "
        "{dir}/ESC-50-master.zip and rerun, or set data.profile: local with data.noise_dir "
        "(and data.noise_csv) pointing at your noise clips"
    ),
)


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


# --- public API --------------------------------------------------------------------


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


def _mirrors(spec: ArchiveSpec, urls: Sequence[str] | None, sha256: str | None, md5: str | None) -> list[Mirror]:
    """The spec's mirrors, or ``urls`` with the given checksums (params / tests override)."""
    if urls is None:
        return list(spec.mirrors)
    if isinstance(urls, str):
        urls = [urls]
    return [Mirror(u, sha256=sha256, md5=md5) for u in urls]


# --- extraction --------------------------------------------------------------------


def _is_junk(name: str) -> bool:
    """macOS resource forks and folders that some re-packs carry; never data."""
    parts = PurePosixPath(name).parts
    return any(p.startswith("._") or p == "__MACOSX" or p == ".DS_Store" for p in parts)


def _unsafe_member(name: str) -> bool:
    """True for names that could write outside the extraction folder."""
    if "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return True
    return ".." in PurePosixPath(name).parts


def _extract_tar(archive: Path, into: Path, progress: bool) -> None:
    try:
        with tarfile.open(archive, "r:*") as tf:
            members = [m for m in tf.getmembers() if not _is_junk(m.name)]
            for member in tqdm(members, desc=f"extract {archive.name}", unit="file", disable=not progress,
                               leave=False):
                # filter="data" refuses absolute paths, "..", links leaving the folder and
                # device files (PEP 706): a hostile archive cannot write outside `into`.
                tf.extract(member, into, filter="data")
    except tarfile.FilterError as exc:
        raise ArchiveError(f"{archive}: unsafe member refused ({exc}); delete the archive and download it again") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"{archive}: cannot be read as a tar archive ({exc}); delete it and rerun to download "
                           "it again") from exc


def _extract_zip(archive: Path, into: Path, progress: bool) -> None:
    root = into.resolve()
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = [i for i in zf.infolist() if not _is_junk(i.filename)]
            for info in infos:
                target = (root / info.filename).resolve()
                if _unsafe_member(info.filename) or not target.is_relative_to(root):
                    raise ArchiveError(f"{archive}: unsafe member {info.filename!r} (would write outside the "
                                       "extraction folder); delete the archive and download it again")
            for info in tqdm(infos, desc=f"extract {archive.name}", unit="file", disable=not progress, leave=False):
                zf.extract(info, root)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise ArchiveError(f"{archive}: cannot be read as a zip archive ({exc}); delete it and rerun to download "
                           "it again") from exc


def _extract_atomically(archive: Path, extract_dir: Path, final_name: str, progress: bool,
                        find_root: Callable[[Path], Path | None], check: Callable[[Path, Path], None],
                        layout: str) -> Path:
    """Extract into a temporary folder, locate the data root, check it, rename it to ``final_name``.

    An interrupted run leaves only a ``.<final_name>.*.tmp`` folder, removed next time.
    """
    extract_dir.mkdir(parents=True, exist_ok=True)
    for stale in extract_dir.glob(f".{final_name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    target = extract_dir / final_name
    tmp = Path(tempfile.mkdtemp(prefix=f".{final_name}.", suffix=".tmp", dir=extract_dir))
    try:
        if archive.name.endswith(".zip"):
            _extract_zip(archive, tmp, progress)
        else:
            _extract_tar(archive, tmp, progress)
        root = find_root(tmp)
        if root is None:
            raise ArchiveError(f"{archive}: not in the expected layout ({layout}); delete it and rerun to "
                               "download it again, or use data.profile: local")
        check(root, archive)
        if target.exists():
            shutil.rmtree(target)
        os.replace(root, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


_GTZAN_FILE = re.compile(r"^(?P<genre>[a-z]+)\.\d{5}\.(au|wav)$", re.IGNORECASE)


def _gtzan_genres(folder: Path) -> dict[str, int]:
    """Genre sub-folders of ``folder`` holding ``<genre>.000NN.au|wav`` files, with counts."""
    counts: dict[str, int] = {}
    if not folder.is_dir():
        return counts
    for sub in folder.iterdir():
        if sub.is_dir():
            n = sum(1 for f in sub.iterdir() if f.is_file() and (m := _GTZAN_FILE.match(f.name))
                    and m.group("genre") == sub.name)
            if n:
                counts[sub.name] = n
    return counts


def _find_gtzan_root(tmp: Path) -> Path | None:
    # The archive's top folder is genres/; accept any folder with the GTZAN layout,
    # shallowest first, so that a re-pack with another top folder name still works.
    candidates = [tmp, *(p for p in tmp.rglob("*") if p.is_dir())]
    candidates.sort(key=lambda p: (len(p.relative_to(tmp).parts), str(p)))
    return next((c for c in candidates if _gtzan_genres(c)), None)


def _check_gtzan(root: Path, archive: Path) -> None:
    counts = _gtzan_genres(root)
    log.info("GTZAN from %s: %d genres, %d clips", archive, len(counts), sum(counts.values()))


def fetch_gtzan(
    download_dir: str | os.PathLike[str],
    progress: bool = True,
    *,
    urls: Sequence[str] | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    extract_dir: str | os.PathLike[str] | None = None,
    timeout: float = 30,
) -> Path:
    """Download (or reuse) ``genres.tar.gz`` in ``download_dir`` and return its ``genres/`` folder.

    Layout: ``genres/<genre>/<genre>.000NN.wav`` (or ``.au``). ``urls`` replaces the
    built-in mirror list (then ``sha256`` / ``md5`` are the checksums to enforce, or
    none: the layout is still checked). A complete earlier extraction in ``extract_dir``
    (default ``download_dir``) is reused without touching the archive.
    """
    download_dir = Path(download_dir)
    extract_dir = Path(extract_dir) if extract_dir is not None else download_dir
    target = extract_dir / "genres"
    if _gtzan_genres(target):
        log.info("using extracted GTZAN in %s", target)
        return target
    archive = download_file(
        _mirrors(GTZAN_ARCHIVE, urls, sha256, md5),
        download_dir / GTZAN_ARCHIVE.filename,
        progress=progress,
        timeout=timeout,
        hint=GTZAN_ARCHIVE.hint.replace("{dir}", str(download_dir)),
    )
    return _extract_atomically(archive, extract_dir, "genres", progress, _find_gtzan_root, _check_gtzan,
                               "genres/<genre>/<genre>.000NN.wav or .au")


def _esc50_problems(root: Path) -> str | None:
    """None when ``root`` has audio/*.wav and meta/esc50.csv listing exactly those clips."""
    csv, audio = root / "meta" / "esc50.csv", root / "audio"
    if not csv.is_file() or not audio.is_dir():
        return "missing meta/esc50.csv or audio/"
    try:
        meta = pd.read_csv(csv)
    except (OSError, ValueError) as exc:
        return f"meta/esc50.csv unreadable ({exc})"
    missing_cols = {"filename", "fold", "target", "category"} - set(meta.columns)
    if missing_cols:
        return f"meta/esc50.csv lacks columns {sorted(missing_cols)}"
    listed = set(meta["filename"].astype(str))
    present = {p.name for p in audio.glob("*.wav")}
    if not listed:
        return "meta/esc50.csv lists no clips"
    if listed - present:
        return f"{len(listed - present)} clips listed in meta/esc50.csv are missing from audio/, e.g. " \
               f"{sorted(listed - present)[0]}"
    if present - listed:
        return f"{len(present - listed)} files in audio/ are not listed in meta/esc50.csv, e.g. " \
               f"{sorted(present - listed)[0]}"
    return None


def _find_esc50_root(tmp: Path) -> Path | None:
    # GitHub names the top folder ESC-50-<ref> (master, or the commit): find it by content.
    found = sorted(tmp.glob("meta/esc50.csv")) + sorted(tmp.glob("*/meta/esc50.csv"))
    return found[0].parent.parent if found else None


def _check_esc50(root: Path, archive: Path) -> None:
    problem = _esc50_problems(root)
    if problem:
        raise ArchiveError(f"{archive}: {problem}; delete the archive and rerun to download it again")


def fetch_esc50(
    download_dir: str | os.PathLike[str],
    progress: bool = True,
    *,
    urls: Sequence[str] | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    extract_dir: str | os.PathLike[str] | None = None,
    timeout: float = 30,
) -> tuple[Path, Path]:
    """Download (or reuse) the ESC-50 archive and return ``(audio folder, meta/esc50.csv)``.

    The archive's ``ESC-50-<ref>/`` folder is extracted to ``<extract_dir>/ESC-50``
    (README and LICENSE included) after checking that ``meta/esc50.csv`` and
    ``audio/*.wav`` list the same clips. ``urls`` / ``sha256`` / ``md5`` override the
    built-in mirrors as in :func:`fetch_gtzan`.
    """
    download_dir = Path(download_dir)
    extract_dir = Path(extract_dir) if extract_dir is not None else download_dir
    target = extract_dir / "ESC-50"
    if target.is_dir() and _esc50_problems(target) is None:
        log.info("using extracted ESC-50 in %s", target)
        return target / "audio", target / "meta" / "esc50.csv"
    archive = download_file(
        _mirrors(ESC50_ARCHIVE, urls, sha256, md5),
        download_dir / ESC50_ARCHIVE.filename,
        progress=progress,
        timeout=timeout,
        hint=ESC50_ARCHIVE.hint.replace("{dir}", str(download_dir)),
    )
    target = _extract_atomically(archive, extract_dir, "ESC-50", progress, _find_esc50_root, _check_esc50,
                                 "ESC-50-<ref>/audio/*.wav + ESC-50-<ref>/meta/esc50.csv")
    return target / "audio", target / "meta" / "esc50.csv"


__all__ = [
    "ArchiveError",
    "ArchiveSpec",
    "DownloadError",
    "ESC50_ARCHIVE",
    "GTZAN_ARCHIVE",
    "Mirror",
    "download_file",
    "fetch_esc50",
    "fetch_gtzan",
    "file_digests",
]
