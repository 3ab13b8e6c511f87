"""Build data/sample/ (the embedded default data set) from ../shared/data/real-sample/.

Run once by a maintainer; the result is committed so that a fresh clone runs offline.
Music: every excerpt, cut to its first MUSIC_SECONDS (keeps the set well under 30 MB).
Noise: two clips per ESC-50 category, from different source recordings where possible.

    python scripts/make_sample.py ../shared/data/real-sample data/sample
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pandas as pd
import soundfile as sf

MUSIC_SECONDS = 12.0
NOISE_PER_CATEGORY = 2


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(src: Path, dst: Path) -> None:
    (dst / "music").mkdir(parents=True, exist_ok=True)
    (dst / "noise").mkdir(parents=True, exist_ok=True)
    music = pd.read_csv(src / "music" / "meta.csv")
    for rel in music["filename"]:
        audio, rate = sf.read(src / "music" / rel, dtype="int16")
        out = dst / "music" / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, audio[: int(MUSIC_SECONDS * rate)], rate, subtype="PCM_16")
    music["duration_s"] = MUSIC_SECONDS
    music.to_csv(dst / "music" / "meta.csv", index=False)

    noise = pd.read_csv(src / "noise" / "meta.csv").sort_values(["category", "filename"])
    # Prefer distinct source recordings: first take each (category, src_file) once.
    noise["rank"] = noise.groupby(["category", "src_file"]).cumcount()
    chosen = noise.sort_values(["category", "rank", "filename"]).groupby("category").head(NOISE_PER_CATEGORY)
    for name in chosen["filename"]:
        shutil.copy2(src / "noise" / name, dst / "noise" / name)
    chosen.drop(columns="rank").sort_values("filename").to_csv(dst / "noise" / "meta.csv", index=False)

    shutil.copy2(src / "PROVENANCE.md", dst / "PROVENANCE-real-sample.md")
    files = sorted(p for p in dst.rglob("*.flac"))
    (dst / "SHA256SUMS").write_text("".join(f"{sha256(p)}  {p.relative_to(dst).as_posix()}\n" for p in files))
    print(f"{len(music)} music excerpts, {len(chosen)} noise clips -> {dst}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
