"""The data sets of the ``full`` profile (GTZAN music, ESC-50 noise) and the one fetcher for both.

An :class:`ArchiveSpec` holds everything that differs between them: the archive's file
name and mirrors (each with the checksums of what it serves), what to tell a user when no
mirror works, how to recognise and check the extracted data folder, and that folder's
name. :func:`fetch` does the rest the same way for every data set: reuse a complete
earlier extraction, else download the archive (:mod:`.http`) and extract it into place
(:mod:`.archives`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, Unpack

import pandas as pd

from danet_music2vec.data.download.archives import extract_to
from danet_music2vec.data.download.http import Mirror, download_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchiveSpec:
    """A data set to download: its archive, the mirrors (best first) and the folder that comes out."""

    filename: str
    mirrors: tuple[Mirror, ...]
    hint: str  # what a user can do when no mirror works; "{dir}" stands for the download folder
    folder: str  # name of the extracted data folder in the extraction folder
    layout: str  # the archive's expected layout, in words, for the error when it is not found
    is_root: Callable[[Path], bool]  # does this extracted folder look like the data folder?
    problems: Callable[[Path], str | None]  # None when a data folder is complete, else what is wrong


class FetchOptions(TypedDict, total=False):
    """The keyword options of :func:`fetch`, which ``fetch_gtzan`` / ``fetch_esc50`` pass on."""

    urls: Sequence[str] | str | None
    sha256: str | None
    md5: str | None
    extract_dir: str | os.PathLike[str] | None
    timeout: float


def fetch(
    spec: ArchiveSpec,
    download_dir: str | os.PathLike[str],
    progress: bool = True,
    *,
    urls: Sequence[str] | str | None = None,
    sha256: str | None = None,
    md5: str | None = None,
    extract_dir: str | os.PathLike[str] | None = None,
    timeout: float = 30,
) -> Path:
    """Download (or reuse) ``spec``'s archive in ``download_dir`` and return its extracted data folder.

    The data folder is ``<extract_dir>/<spec.folder>`` (``extract_dir`` defaults to
    ``download_dir``); a complete earlier extraction there is reused without touching
    the archive. ``urls`` replaces the built-in mirror list (params / tests); then
    ``sha256`` / ``md5`` are the checksums to enforce, or none: the extracted folder is
    still checked. Raises ``DownloadError`` / ``ArchiveError`` naming the URLs or the
    archive and the fix.
    """
    download_dir = Path(download_dir)
    target = Path(extract_dir if extract_dir is not None else download_dir) / spec.folder
    if target.is_dir() and spec.problems(target) is None:
        log.info("using extracted %s", target)
        return target
    archive = download_file(
        spec.mirrors if urls is None else [urls] if isinstance(urls, str) else list(urls),
        download_dir / spec.filename,
        sha256=sha256,
        md5=md5,
        progress=progress,
        timeout=timeout,
        hint=spec.hint.replace("{dir}", str(download_dir)),
    )
    return extract_to(archive, target, is_root=spec.is_root, problems=spec.problems, layout=spec.layout,
                      progress=progress)


# --- GTZAN -------------------------------------------------------------------------


_GTZAN_FILE = re.compile(r"^(?P<genre>[a-z]+)\.\d{5}\.(au|wav)$", re.IGNORECASE)


def _gtzan_problems(folder: Path) -> str | None:
    """None when ``folder`` has genre sub-folders holding ``<genre>.000NN.au|wav`` files."""
    # Any folder with that layout counts, so that a re-pack whose top folder is not
    # called genres/ still works.
    if any((m := _GTZAN_FILE.match(f.name)) and m.group("genre") == f.parent.name and f.is_file()
           for f in folder.glob("*/*")):
        return None
    return "no <genre>/<genre>.000NN.wav or .au files"


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
    folder="genres",
    layout="genres/<genre>/<genre>.000NN.wav or .au",
    is_root=lambda folder: _gtzan_problems(folder) is None,
    problems=_gtzan_problems,
)


def fetch_gtzan(download_dir: str | os.PathLike[str], progress: bool = True, **options: Unpack[FetchOptions]) -> Path:
    """Download (or reuse) ``genres.tar.gz`` and return its ``genres/`` folder (options: :func:`fetch`).

    Layout: ``genres/<genre>/<genre>.000NN.wav`` (or ``.au``).
    """
    return fetch(GTZAN_ARCHIVE, download_dir, progress, **options)


# --- ESC-50 ------------------------------------------------------------------------


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


# The data set lives in the GitHub repository karolpiczak/ESC-50 (no release assets).
# Pinned to commit 33c8ce9eb2cf0b1c2f8bcf322eb349b6be34dbb6 (the head of master, "latest
# commit per November 24, 2025" in a public loader), so the content never moves. The
# archive GitHub generates for it was recorded by a public benchmark script as
# 645,832,161 bytes, sha256 661183a6...; another public loader records md5
# 071b44018315e034b2c6e8064543d19c for the same URL (not enforced: one record suffices,
# and the two could not be cross-checked here). GitHub generates archives on the fly and
# does not promise byte-stable output, so the second mirror is the same pinned commit
# without a checksum: fetch then verifies the structure (every clip listed in
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
    folder="ESC-50",
    layout="ESC-50-<ref>/audio/*.wav + ESC-50-<ref>/meta/esc50.csv",
    # GitHub names the top folder ESC-50-<ref> (master, or the commit): found by content.
    is_root=lambda folder: (folder / "meta" / "esc50.csv").is_file(),
    problems=_esc50_problems,
)


def fetch_esc50(download_dir: str | os.PathLike[str], progress: bool = True,
                **options: Unpack[FetchOptions]) -> tuple[Path, Path]:
    """Download (or reuse) the ESC-50 archive and return ``(audio folder, meta/esc50.csv)`` (options: :func:`fetch`).

    The archive's ``ESC-50-<ref>/`` folder becomes ``<extract_dir>/ESC-50`` (README and
    LICENSE included) once ``meta/esc50.csv`` and ``audio/*.wav`` list the same clips.
    """
    root = fetch(ESC50_ARCHIVE, download_dir, progress, **options)
    return root / "audio", root / "meta" / "esc50.csv"


__all__ = ["ArchiveSpec", "ESC50_ARCHIVE", "GTZAN_ARCHIVE", "FetchOptions", "fetch", "fetch_esc50", "fetch_gtzan"]
