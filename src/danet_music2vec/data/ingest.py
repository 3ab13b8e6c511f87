"""Bring every source clip into ``data/raw/``: validated, mono, at one sample rate, FLAC.

Downstream stages then read one uniform layout whatever the profile (sample, local
or full), and bad files are caught once, here, with a message naming each file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from danet_music2vec.atomic import atomic_dir
from danet_music2vec.audio import AudioError, load_audio, save_audio
from danet_music2vec.checksums import sha256_file
from danet_music2vec.data.sources import scan_music, scan_noise
from danet_music2vec.params import DataParams

MANIFEST = "manifest.parquet"


def resolve_sources(data: DataParams) -> tuple[Path, Path, Path | None]:
    """``(music_dir, noise_dir, noise_csv)`` for the configured profile (downloads for ``full``)."""
    if data.profile == "sample":
        root = Path(data.sample_dir)
        return root / "music", root / "noise", root / "noise" / "meta.csv"
    if data.profile == "local":
        return Path(data.music_dir), Path(data.noise_dir), Path(data.noise_csv) if data.noise_csv else None
    from danet_music2vec.data.download import fetch_esc50, fetch_gtzan

    download_dir = Path(data.download_dir)
    audio_dir, csv = fetch_esc50(download_dir)
    return fetch_gtzan(download_dir), audio_dir, csv


def ingest(
    catalogue: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    sample_rate: int,
    min_seconds: dict[str, float],
    on_bad_file: str = "error",
    progress: bool = True,
) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Validate and convert each clip into ``out_dir`` (replaced atomically).

    Returns the manifest (catalogue + ``path``, ``duration_s``, ``sha256`` of the stored FLAC and
    ``source_sha256`` of the file it came from: what a trained separator's manifest lists) and the
    skipped files (``on_bad_file="skip"``). With ``"error"`` the first bad file stops
    the run and the previous ``out_dir`` is left untouched.
    """
    out_dir = Path(out_dir)
    rows, skipped = [], []
    with atomic_dir(out_dir) as tmp:
        for clip in tqdm(list(catalogue.itertuples(index=False)), desc="ingest", unit="clip", disable=not progress):
            try:
                audio = load_audio(clip.source_path, sample_rate, min_seconds=min_seconds[clip.kind])
            except AudioError as err:
                if on_bad_file == "error":
                    # The pipeline's own way out, which load_audio (also used by dm2v) cannot name.
                    raise AudioError(err.path, err.problem, f"{err.fix} (or data.on_bad_file: skip leaves bad files out)") from None
                skipped.append({"file": str(clip.source_path), "reason": err.problem})
                continue
            rel = Path(clip.clip_id + ".flac")
            save_audio(tmp / rel, audio, sample_rate)
            rows.append(
                clip._asdict()
                | {
                    "path": (out_dir / rel).as_posix(),
                    "duration_s": audio.shape[0] / sample_rate,
                    "sha256": sha256_file(tmp / rel),
                    "source_sha256": sha256_file(clip.source_path),
                }
            )
        manifest = pd.DataFrame(rows)
        manifest.to_parquet(tmp / MANIFEST, index=False)
    return manifest, skipped


def catalogue_sources(data: DataParams) -> pd.DataFrame:
    """Music and noise catalogue of the configured profile."""
    music_dir, noise_dir, noise_csv = resolve_sources(data)
    return pd.concat([scan_music(music_dir), scan_noise(noise_dir, noise_csv)], ignore_index=True)
