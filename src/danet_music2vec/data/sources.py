"""Catalogue music and noise clips from local folders (the ``sample`` and ``local`` profiles).

Music: ``<music_dir>/<genre>/<file>`` (GTZAN's own ``genres/<genre>/<genre>.000NN.au``
fits), optionally with ``<music_dir>/meta.csv`` holding ``filename`` (relative to
music_dir), ``genre`` and ``original_file``: excerpts of one original track share a
``group`` so that a split never puts one track on both sides.
Noise: audio files under ``noise_dir`` plus an optional ESC-50 style CSV
(``filename, fold, target, category``, optionally ``src_file``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from danet_music2vec.audio import AUDIO_EXTENSIONS

CATALOGUE_COLUMNS = ["clip_id", "kind", "label", "group", "fold", "source_path"]


class SourceError(ValueError):
    """A data folder or its metadata cannot be used; the message names it and the fix."""


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def _groups(meta_path: Path, folder: Path) -> dict[str, str]:
    """``filename -> original_file`` from an optional meta CSV (excerpts of one track share a group)."""
    if not meta_path.is_file():
        return {}
    meta = pd.read_csv(meta_path)
    if "filename" not in meta.columns:
        raise SourceError(f"{meta_path}: needs a 'filename' column (path relative to {folder})")
    if "original_file" not in meta.columns:
        return {}
    return dict(zip(meta["filename"].astype(str), meta["original_file"].astype(str)))


def _separation_rows(folder: Path, clips: pd.DataFrame) -> pd.DataFrame:
    """Catalogue rows of a separator-only pool as the features stage takes them (clip ids under ``separation/``)."""
    ids = clips["clip_id"].str.split("/", n=1).str[1]
    return pd.DataFrame({"clip_id": f"separation/{folder.name}/" + ids, "kind": clips["kind"],
                         "group": f"{folder.name}:" + clips["group"].astype(str), "label": clips["label"],
                         "fold": clips["fold"], "path": clips["source_path"]})  # fmt: skip


def scan_separation_music(folder: str | Path) -> pd.DataFrame:
    """Unlabelled music for training the separator only (``data.separation_music_dirs``).

    Every audio file under ``folder`` (or its ``music/``, at any depth); an optional ``meta.csv`` with
    ``filename, original_file`` groups excerpts of one track (for the validation hold-out).
    Columns: ``clip_id, kind, group, label, fold, path`` (label "", fold -1), as the features stage takes them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"{folder}: not found; fix or remove it in data.separation_music_dirs")
    music_root = folder / "music" if (folder / "music").is_dir() else folder
    groups = _groups(music_root / "meta.csv", music_root)
    rows = []
    for path in _audio_files(music_root):
        rel = path.relative_to(music_root).as_posix()
        rows.append({"clip_id": f"music/{Path(rel).with_suffix('').as_posix()}", "kind": "music", "label": "",
                     "group": groups.get(rel, rel), "fold": -1, "source_path": str(path)})  # fmt: skip
    if not rows:
        raise SourceError(f"{folder}: no audio files ({', '.join(AUDIO_EXTENSIONS)}); fix data.separation_music_dirs")
    return _separation_rows(folder, pd.DataFrame(rows))


def scan_separation_noise(folder: str | Path) -> pd.DataFrame:
    """Environmental sounds for training the separator only (``data.separation_noise_dirs``).

    Laid out like a noise folder (:func:`scan_noise`): audio files at any depth plus an optional
    ESC-50 style ``meta.csv`` (``filename, fold, target, category``, and ``src_file`` so that takes of
    one recording share a group). Columns as :func:`scan_separation_music`, with the category as label.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"{folder}: not found; fix or remove it in data.separation_noise_dirs")
    return _separation_rows(folder, scan_noise(folder))


def held_out_of_pool(pool: pd.DataFrame, catalogue: pd.DataFrame, test_folds: list[int]) -> pd.Series:
    """Which rows of a separator-only noise ``pool`` must not train: True for each.

    A pool clip is held out when it is in one of the ESC-50 ``test_folds`` (the ``full`` profile
    tests on them), or when it comes from a source recording of the profile's own noise clips
    (``catalogue``, any split): a test recording must never train, a validation recording must
    stay unseen, and a training one trains anyway from the profile's copy. Recordings are compared
    by their group, ``<fold>-<src_file>`` as :func:`scan_noise` forms it (ESC-50 keeps all takes of a
    recording in one fold).
    """
    own = set(catalogue.loc[catalogue["kind"] == "noise", "group"].astype(str))
    recording = pool["group"].str.split(":", n=1).str[1]
    return pool["fold"].isin(test_folds) | recording.isin(own)


def scan_music(music_dir: str | Path) -> pd.DataFrame:
    """One row per music file; the genre is the name of its sub-folder."""
    music_dir = Path(music_dir)
    if not music_dir.is_dir():
        raise SourceError(f"{music_dir}: music folder not found; set data.music_dir to a folder of genre sub-folders")
    groups = _groups(music_dir / "meta.csv", music_dir)
    rows = []
    for path in _audio_files(music_dir):
        rel = path.relative_to(music_dir)
        if len(rel.parts) < 2:
            raise SourceError(f"{path}: music files must sit in a genre sub-folder, e.g. {music_dir}/rock/{path.name}")
        genre = rel.parts[0]
        rows.append(
            {
                "clip_id": f"music/{rel.with_suffix('').as_posix()}",
                "kind": "music",
                "label": genre,
                "group": groups.get(rel.as_posix(), rel.as_posix()),
                "fold": -1,
                "source_path": str(path),
            }
        )
    if not rows:
        raise SourceError(f"{music_dir}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in genre sub-folders")
    return pd.DataFrame(rows, columns=CATALOGUE_COLUMNS)


def scan_noise(noise_dir: str | Path, csv_path: str | Path | None = None) -> pd.DataFrame:
    """One row per noise file; category, fold and source recording from the CSV when there is one."""
    noise_dir = Path(noise_dir)
    if not noise_dir.is_dir():
        raise SourceError(f"{noise_dir}: noise folder not found; set data.noise_dir to a folder of audio files")
    if csv_path is None and (noise_dir / "meta.csv").is_file():
        csv_path = noise_dir / "meta.csv"
    meta = None
    if csv_path is not None:
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise SourceError(f"{csv_path}: noise CSV not found; fix data.noise_csv or set it to null")
        meta = pd.read_csv(csv_path)
        missing = {"filename", "fold", "category"} - set(meta.columns)
        if missing:
            raise SourceError(
                f"{csv_path}: missing ESC-50 columns {sorted(missing)}; expected filename, fold, target, category"
            )
        meta = meta.set_index(meta["filename"].astype(str))
    rows = []
    for path in _audio_files(noise_dir):
        rel = path.relative_to(noise_dir)
        category, fold, group = (rel.parts[0] if len(rel.parts) > 1 else "noise"), -1, rel.stem
        if meta is not None:
            if path.name not in meta.index:
                raise SourceError(f"{path}: not listed in {csv_path}; add a row for it or remove the file")
            row = meta.loc[path.name]
            category, fold = str(row["category"]), int(row["fold"])
            group = f"{fold}-{row['src_file']}" if "src_file" in meta.columns else rel.stem
        rows.append(
            {
                "clip_id": f"noise/{rel.with_suffix('').as_posix()}",
                "kind": "noise",
                "label": category,
                "group": str(group),
                "fold": fold,
                "source_path": str(path),
            }
        )
    if not rows:
        raise SourceError(f"{noise_dir}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return pd.DataFrame(rows, columns=CATALOGUE_COLUMNS)
