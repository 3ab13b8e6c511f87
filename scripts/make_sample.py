"""Build the embedded default data (data/sample/, data/extra-music/) from ../shared/data/.

Run once by a maintainer; the result is committed so that a fresh clone runs offline.

- data/sample/music: every real-sample excerpt, whole (30 s), as Ogg Vorbis (FLAC of the
  full excerpts would not fit the repository's size budget next to the extra music).
- data/sample/noise: two ESC-50 clips per category, from different source recordings where possible (FLAC, as shipped).
- data/extra-music: the extra-music pool as shipped (Ogg Vorbis, no genre labels): music for
  training the separator only (`data.separation_music_dirs`).

    python scripts/make_sample.py ../shared/data data
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pandas as pd
import soundfile as sf

NOISE_PER_CATEGORY = 2
# libsndfile's Vorbis quality 0.5 (about q5, ~160 kbit/s): transparent for the separator's 8 kHz band.
VORBIS_COMPRESSION = 0.5


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_checksums(root: Path) -> None:
    files = sorted(p for p in root.rglob("*") if p.suffix in (".flac", ".ogg"))
    (root / "SHA256SUMS").write_text("".join(f"{sha256(p)}  {p.relative_to(root).as_posix()}\n" for p in files))


def sample(src: Path, dst: Path) -> None:
    (dst / "music").mkdir(parents=True, exist_ok=True)
    (dst / "noise").mkdir(parents=True, exist_ok=True)
    music = pd.read_csv(src / "music" / "meta.csv")
    names = []
    for rel in music["filename"]:
        audio, rate = sf.read(src / "music" / rel, dtype="float32")
        out = (dst / "music" / rel).with_suffix(".ogg")
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, audio, rate, format="OGG", subtype="VORBIS", compression_level=VORBIS_COMPRESSION)
        names.append(out.relative_to(dst / "music").as_posix())
        music.loc[music["filename"] == rel, "duration_s"] = len(audio) / rate
    music["filename"] = names
    music.to_csv(dst / "music" / "meta.csv", index=False)

    noise = pd.read_csv(src / "noise" / "meta.csv").sort_values(["category", "filename"])
    # Prefer distinct source recordings: first take each (category, src_file) once.
    noise["rank"] = noise.groupby(["category", "src_file"]).cumcount()
    chosen = noise.sort_values(["category", "rank", "filename"]).groupby("category").head(NOISE_PER_CATEGORY)
    for name in chosen["filename"]:
        shutil.copy2(src / "noise" / name, dst / "noise" / name)
    chosen.drop(columns="rank").sort_values("filename").to_csv(dst / "noise" / "meta.csv", index=False)
    shutil.copy2(src / "PROVENANCE.md", dst / "PROVENANCE-real-sample.md")
    write_checksums(dst)
    print(f"{len(music)} music excerpts, {len(chosen)} noise clips -> {dst}")


def extra_music(src: Path, dst: Path) -> None:
    (dst / "music").mkdir(parents=True, exist_ok=True)
    for path in sorted((src / "music").glob("*.ogg")):
        shutil.copy2(path, dst / "music" / path.name)
    shutil.copy2(src / "music" / "meta.csv", dst / "music" / "meta.csv")
    shutil.copy2(src / "PROVENANCE.md", dst / "PROVENANCE-extra-music.md")
    write_checksums(dst)
    print(f"{len(list((dst / 'music').glob('*.ogg')))} extra music excerpts -> {dst}")


if __name__ == "__main__":
    shared, data = Path(sys.argv[1]), Path(sys.argv[2])
    shutil.rmtree(data / "sample" / "music", ignore_errors=True)
    sample(shared / "real-sample", data / "sample")
    extra_music(shared / "extra-music", data / "extra-music")
