"""A ``local`` data profile of any size, cut from the repository's real clips and recombined (the cost curve's data).

    python bench/scale_profile.py DEST --music 1000 --noise 2000 [--seed 0]

Each new 30 s music clip is three 10 s segments of three different source tracks, put in one of
GTZAN's 10 genre folders in turn; each new 5 s noise clip is two 2.5 s segments of two different
source recordings, given one of 50 ESC-50 categories in turn (``meta.csv``, each clip its own
recording). The labels are not what the music or sound is: the profile measures cost, not quality.
Music is written as GTZAN ships it (22.05 kHz 16-bit mono), noise as ESC-50 (44.1 kHz 16-bit
WAV), so the ``download`` stage decodes and resamples as it would for the ``full`` profile.

Sources (:func:`source_pools`): the sample's TRAINING clips (its split computed from params.yaml as
the split stage does), ``data/extra-music`` and ``data/extra-noise``, less every track or recording
that has a clip in the sample's test set and every ESC-50 clip of a test fold (``split.noise_test_folds``).
No test audio is ever cut. ``segments.csv`` in DEST says where every segment came from.
Everything is drawn from one seed: the same arguments write the same files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from danet_music2vec.audio import resample
from danet_music2vec.data.ingest import catalogue_sources
from danet_music2vec.data.sources import held_out_of_pool, scan_separation_music, scan_separation_noise
from danet_music2vec.data.splits import split_clips
from danet_music2vec.params import load_params

REPO = Path(__file__).resolve().parents[1]
GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")  # GTZAN's
MUSIC = {"seconds": 30.0, "segments": 3, "rate": 22050}
NOISE = {"seconds": 5.0, "segments": 2, "rate": 44100}
# A segment quieter than this (peak) is drawn again: a silent clip would stop the download stage.
MIN_PEAK = 1e-3


def _normalise(track: str) -> str:
    """A track name as both meta CSVs write it (data/extra-music's carry a leading slash)."""
    return track.strip().lstrip("/")


def source_pools(repo: Path = REPO) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The music and the noise clips that may be cut: columns ``path, group, label``; no test audio.

    The sample's test set is what the split stage makes of it with ``repo``'s params.yaml (so it
    matches ``data/splits.parquet`` of a ``dvc repro`` on the sample profile): its training clips are
    kept; a clip of ``data/extra-music`` from a test track, and one of ``data/extra-noise`` from a test
    recording or an ESC-50 test fold (:func:`held_out_of_pool`), is left out.
    """
    params = load_params(repo / "params.yaml")
    data = params.data.model_copy(update={"profile": "sample", "sample_dir": str(repo / "data" / "sample")})
    splits, _ = split_clips(catalogue_sources(data), params.split, "sample")
    train, test = splits[splits["split"] == "train"], splits[splits["split"] == "test"]
    pick = ["path", "group", "label"]

    def own(kind: str) -> pd.DataFrame:
        rows = train[train["kind"] == kind]
        return pd.DataFrame({"path": rows["source_path"], "group": "sample:" + rows["group"].astype(str), "label": rows["label"]})

    test_tracks = {_normalise(g) for g in test.loc[test["kind"] == "music", "group"]}
    extra_music = scan_separation_music(repo / "data" / "extra-music")
    extra_track = extra_music["group"].str.split(":", n=1).str[1].map(_normalise)
    extra_noise = scan_separation_noise(repo / "data" / "extra-noise")
    noise_out = held_out_of_pool(extra_noise, test, params.split.noise_test_folds)
    music = pd.concat([own("music"), extra_music.loc[~extra_track.isin(test_tracks), pick]], ignore_index=True)
    noise = pd.concat([own("noise"), extra_noise.loc[~noise_out, pick]], ignore_index=True)
    return music.reset_index(drop=True), noise.reset_index(drop=True)


def _segment(path: str, start_s: float, seconds: float, rate: int) -> np.ndarray:
    """``seconds`` of mono audio from ``start_s`` into ``path``, at ``rate``."""
    with sf.SoundFile(path) as f:
        f.seek(int(start_s * f.samplerate))
        audio = f.read(round(seconds * f.samplerate), dtype="float32", always_2d=True).mean(axis=1)
        native = f.samplerate
    return resample(audio, native, rate) if native != rate else audio


def _cut(pool: pd.DataFrame, kind: str, count: int, labels: list[str], spec: dict, rng: np.random.Generator,
         dest: Path) -> list[dict]:  # fmt: skip
    """Write ``count`` clips of ``kind`` into ``dest``; one row per segment (for segments.csv)."""
    seg_seconds = spec["seconds"] / spec["segments"]
    durations = pool["path"].map(lambda p: sf.info(p).duration)
    pool, durations = pool[durations >= seg_seconds], durations[durations >= seg_seconds].to_numpy()
    groups = pool["group"].to_numpy()
    unique_groups = np.unique(groups)
    length = int(spec["seconds"] * spec["rate"])
    rows = []
    for index in range(count):
        label = labels[index % len(labels)]
        parts = []
        # Segments of different tracks / recordings: the groups are drawn first, then a clip of each.
        for group in rng.choice(unique_groups, size=spec["segments"], replace=False):
            members = np.flatnonzero(groups == group)
            for _ in range(20):
                source = int(rng.choice(members))
                start = float(rng.uniform(0.0, durations[source] - seg_seconds))
                audio = _segment(pool["path"].iloc[source], start, seg_seconds, spec["rate"])
                if np.abs(audio).max() >= MIN_PEAK:
                    break
            parts.append(audio)
            rows.append({"kind": kind, "clip": index, "label": label, "source_path": pool["path"].iloc[source],
                         "source_group": group, "start_s": round(start, 4), "seconds": seg_seconds})  # fmt: skip
        clip = np.zeros(length, dtype=np.float32)
        joined = np.concatenate(parts)[:length]
        clip[: len(joined)] = joined
        name = f"{label}/{label}.{index:05d}.wav" if kind == "music" else f"{index % 5 + 1}-{index:06d}-A-{labels.index(label)}.wav"
        out = dest / name
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, np.clip(clip, -1.0, 1.0), spec["rate"], subtype="PCM_16")
        for row in rows[-spec["segments"] :]:
            row["filename"] = name
    return rows


def build_scale_profile(dest: str | Path, music_clips: int, noise_clips: int, seed: int = 0,
                        genres: int = len(GENRES), categories: int = 50, repo: Path = REPO) -> dict:  # fmt: skip
    """Write a ``local`` profile of ``music_clips`` x 30 s and ``noise_clips`` x 5 s into ``dest`` (module docstring).

    ``dest/music/<genre>/`` and ``dest/noise/`` with an ESC-50 style ``meta.csv``; ``dest/segments.csv``
    names the source of every segment. The first ``genres`` of GTZAN's genres and ``categories`` of ESC-50's
    are used: the split stage keeps a genre with fewer than ``split.min_clips_per_genre`` clips, and a
    category with a single clip, out of the test set. Returns the ``data`` params that select it.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise FileExistsError(f"{dest}: not empty; give a new folder")
    music_pool, noise_pool = source_pools(repo)
    labels = sorted(noise_pool["label"].unique())[:categories]
    rng = np.random.default_rng(seed)
    rows = _cut(music_pool, "music", music_clips, list(GENRES[:genres]), MUSIC, rng, dest / "music")
    rows += _cut(noise_pool, "noise", noise_clips, labels, NOISE, rng, dest / "noise")
    segments = pd.DataFrame(rows)
    noise = segments[segments["kind"] == "noise"].drop_duplicates("clip")
    pd.DataFrame({
        "filename": noise["filename"], "fold": noise["clip"] % 5 + 1, "target": noise["label"].map(labels.index),
        "category": noise["label"], "src_file": noise["clip"], "take": "A",
    }).to_csv(dest / "noise" / "meta.csv", index=False)  # fmt: skip
    segments.to_csv(dest / "segments.csv", index=False)
    data = {"profile": "local", "music_dir": str(dest / "music"), "noise_dir": str(dest / "noise"), "noise_csv": None}
    (dest / "profile.json").write_text(json.dumps({"music_clips": music_clips, "noise_clips": noise_clips,
                                                   "seed": seed, "data": data}, indent=2) + "\n")  # fmt: skip
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--music", type=int, required=True, help="30 s music clips")
    parser.add_argument("--noise", type=int, required=True, help="5 s noise clips")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(build_scale_profile(args.dest, args.music, args.noise, args.seed), indent=2))


if __name__ == "__main__":
    main()
