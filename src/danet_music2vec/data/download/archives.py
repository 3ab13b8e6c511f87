"""Unpack a downloaded archive safely and move its data folder into place in one rename.

Both formats refuse members that would write outside the extraction folder (absolute
paths, ``..``, links leaving it, device files) and skip macOS resource-fork junk. The
archive is extracted into a scratch folder beside the target; the data folder is found
by content (archives name their top folder differently), checked, and only then renamed
onto the target, so an interrupted or rejected extraction never leaves a half folder
where a later run would trust it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from tqdm import tqdm

log = logging.getLogger(__name__)


class ArchiveError(ValueError):
    """An archive is corrupt, unsafe or not in the expected layout; the message names it and the fix."""


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
        raise ArchiveError(f"{archive}: unsafe member refused ({exc}); delete the archive and download it "
                           "again") from exc
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


def _shallowest(folder: Path, is_root: Callable[[Path], bool]) -> Path | None:
    """The shallowest folder under ``folder`` (itself included) for which ``is_root`` holds, by name on a tie."""
    candidates = [folder, *(p for p in folder.rglob("*") if p.is_dir())]
    candidates.sort(key=lambda p: (len(p.relative_to(folder).parts), str(p)))
    return next((c for c in candidates if is_root(c)), None)


def extract_to(
    archive: Path,
    target: Path,
    *,
    is_root: Callable[[Path], bool],
    problems: Callable[[Path], str | None],
    layout: str,
    progress: bool = True,
) -> Path:
    """Extract ``archive`` (``.zip``, else any tar) and rename its data folder onto ``target``.

    The data folder is the shallowest extracted folder for which ``is_root`` holds
    (``layout`` describes it in the error when there is none); ``problems`` returns
    None when it is complete, else what is wrong, and an incomplete one is refused.
    A previous ``target`` is replaced. An interrupted run leaves only a
    ``.<target name>.*.tmp`` folder beside ``target``, removed by the next call.

    Raises :class:`ArchiveError` naming the archive and the fix.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        if archive.name.endswith(".zip"):
            _extract_zip(archive, scratch, progress)
        else:
            _extract_tar(archive, scratch, progress)
        root = _shallowest(scratch, is_root)
        if root is None:
            raise ArchiveError(f"{archive}: not in the expected layout ({layout}); delete it and rerun to "
                               "download it again, or use data.profile: local")
        problem = problems(root)
        if problem:
            raise ArchiveError(f"{archive}: {problem}; delete the archive and rerun to download it again")
        if target.exists():
            shutil.rmtree(target)
        os.replace(root, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("extracted %s into %s", archive, target)
    return target


__all__ = ["ArchiveError", "extract_to"]
