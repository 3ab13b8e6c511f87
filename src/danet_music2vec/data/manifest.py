"""Is a test clip in a separator's training data? The check the pipeline runs before scoring.

A trained separator carries the manifest of every clip it learned from or was chosen on
(``training_clips``: ``clip_id, kind, label, sha256, role``; see
:func:`~danet_music2vec.separator_training.loop.clip_manifest`). A test clip is "seen" when its
source file has the sha256 of a manifest entry, or, for ESC-50 clips, when it is the same ESC-50
clip (its file name, ``<fold>-<src_file>-<take>-<target>``, names it whatever the format or rate
it was stored in). A user's ``local`` folders may hold clips the shipped separator trained on;
scoring on them would flatter it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath

import pandas as pd

from danet_music2vec.data.sources import SourceError

ESC50_NAME = re.compile(r"^\d-\d+-[A-Z]-\d+$")  # an ESC-50 clip's file stem, e.g. 1-100032-A-0


class SeenClipError(SourceError):
    """A test clip is in the separator's training data; the message names it and the fix (a stage prints one line)."""


def esc50_name(clip_id: str) -> str | None:
    """The ESC-50 clip a clip id names (its last path part, when it has ESC-50's form), else None."""
    stem = PurePosixPath(clip_id).name
    return stem if ESC50_NAME.match(stem) else None


def seen_test_clips(test: pd.DataFrame, training_clips: Iterable[Mapping[str, str]]) -> pd.DataFrame:
    """The rows of ``test`` (``clip_id``, ``source_path``, ``source_sha256``) whose audio is in ``training_clips``,
    with the matching manifest entry in ``trained_as``."""
    by_digest, by_name = {}, {}
    for clip in training_clips:
        if clip.get("sha256"):
            by_digest[clip["sha256"]] = clip["clip_id"]
        name = esc50_name(clip["clip_id"])
        if name:
            by_name[name] = clip["clip_id"]
    found = test["source_sha256"].map(by_digest)
    found = found.fillna(test["clip_id"].map(lambda c: by_name.get(esc50_name(c) or "")))
    return test.assign(trained_as=found)[found.notna()]


def check_unseen(test: pd.DataFrame, training_clips: Iterable[Mapping[str, str]], model: str) -> None:
    """Raise :class:`SeenClipError` naming the first test clip of ``test`` that ``model`` trained on."""
    seen = seen_test_clips(test, training_clips)
    if not seen.empty:
        first = seen.iloc[0]
        more = f" (and {len(seen) - 1} more)" if len(seen) > 1 else ""
        raise SeenClipError(f"{first['source_path']}: test clip {first['clip_id']} is in the training data of {model} "
                            f"(as {first['trained_as']}){more}; remove it from the test data or set "
                            "separator.start: scratch")  # fmt: skip
