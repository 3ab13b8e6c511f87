"""Train/test splits for music and noise clips.

- ``gtzan_seed``: the original work's split: files ordered by genre then index,
  ``np.random.RandomState(seed).permutation``, the last 50 are the test set.
- ``gtzan_filtered``: the fault-filtered split of Kereliuk et al. (2015), the lists
  torchaudio ships (its validation list joins training; faulty files are dropped).
- ``esc50_original``: ESC-50 rows in file order, the first 1900 train, the rest test.
- ``folds``: ESC-50 folds listed in ``split.noise_test_folds`` are the test set.
- ``stratified``: scikit-learn's StratifiedGroupKFold with a seed, so the label mix
  is kept on both sides and one group (all excerpts of one track, or all clips cut
  from one Freesound recording) never sits on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from torchaudio.datasets import gtzan

from danet_music2vec.data.sources import SourceError
from danet_music2vec.params import SplitParams

GTZAN_TEST_SIZE = 50
ESC50_ORIGINAL_TRAIN_ROWS = 1900


def stratified_split(clips: pd.DataFrame, test_fraction: float, seed: int) -> pd.Series:
    """'train'/'test' per clip, stratified by ``label`` and grouped by ``group``.

    Each label sends ``floor(n_groups * test_fraction)`` of its groups to test, and
    the remaining test places go to the labels with the largest remainders (ties
    broken by the seed), so the overall test share matches ``test_fraction`` even
    when every label has only two or three groups. scikit-learn's
    StratifiedGroupKFold refuses exactly that case (fewer members than folds),
    which is the normal case for the sample data.
    """
    rng = np.random.RandomState(seed)
    groups = clips.groupby("label")["group"].unique().sort_index()
    shares = groups.map(len) * test_fraction
    counts = np.floor(shares).astype(int)
    remainder = shares - counts
    extra = round(float(shares.sum())) - int(counts.sum())
    tie_break = rng.permutation(len(groups))
    by_remainder = sorted(range(len(groups)), key=lambda i: (-remainder.iloc[i], tie_break[i]))
    for i in by_remainder[:extra]:
        counts.iloc[i] += 1
    test_groups: set[str] = set()
    for label, members in groups.items():
        members = np.sort(members)
        # A label with a single group stays in training: it cannot be on both sides.
        n_test = min(int(counts[label]), len(members) - 1)
        test_groups.update(members[rng.permutation(len(members))[:n_test]])
    return clips["group"].isin(test_groups).map({True: "test", False: "train"})


def gtzan_seed_split(clips: pd.DataFrame, seed: int) -> pd.Series:
    """The original work's GTZAN split (sorted by genre then file, permuted, last 50 test)."""
    ordered = clips.sort_values(["label", "clip_id"])
    order = np.random.RandomState(seed).permutation(len(ordered))
    test_ids = set(ordered.iloc[order[-GTZAN_TEST_SIZE:]].index)
    return pd.Series(["test" if i in test_ids else "train" for i in clips.index], index=clips.index)


def gtzan_filtered_split(clips: pd.DataFrame) -> pd.Series:
    """Kereliuk et al.'s fault-filtered split; files on no list get ``None`` (dropped)."""
    stems = clips["clip_id"].str.rsplit("/", n=1).str[-1]
    train = set(gtzan.filtered_train) | set(gtzan.filtered_valid)
    test = set(gtzan.filtered_test)
    return stems.map(lambda s: "test" if s in test else ("train" if s in train else None))


def esc50_original_split(clips: pd.DataFrame) -> pd.Series:
    """First 1900 clips in file order train, the rest test (the original work)."""
    ordered = clips.sort_values("clip_id")
    test_ids = set(ordered.index[ESC50_ORIGINAL_TRAIN_ROWS:])
    return pd.Series(["test" if i in test_ids else "train" for i in clips.index], index=clips.index)


def fold_split(clips: pd.DataFrame, test_folds: Sequence[int]) -> pd.Series:
    """Clips whose ESC-50 fold is in ``test_folds`` are the test set."""
    if (clips["fold"] < 0).all():
        raise SourceError("split.noise_method=folds needs ESC-50 folds; the noise clips have no CSV with a 'fold' column")
    return clips["fold"].isin(list(test_folds)).map({True: "test", False: "train"})


def drop_small_genres(music: pd.DataFrame, min_clips: int) -> tuple[pd.DataFrame, dict[str, int]]:
    """Remove genres with fewer than ``min_clips`` clips; returns the kept rows and the dropped counts."""
    counts = music["label"].value_counts()
    dropped = {str(g): int(n) for g, n in counts.items() if n < min_clips}
    return music[~music["label"].isin(dropped)], dropped


def split_clips(catalogue: pd.DataFrame, split_params: SplitParams, profile: str) -> tuple[pd.DataFrame, dict]:
    """Assign every clip to 'train' or 'test'; returns the split table and facts for the metrics."""
    music_method = split_params.music_method
    noise_method = split_params.noise_method
    if music_method == "auto":
        music_method = "gtzan_seed" if profile == "full" else "stratified"
    if noise_method == "auto":
        noise_method = "esc50_original" if profile == "full" else "stratified"

    music, dropped = drop_small_genres(catalogue[catalogue["kind"] == "music"], split_params.min_clips_per_genre)
    if music["label"].nunique() < 2:
        raise SourceError(
            f"fewer than 2 genres have at least split.min_clips_per_genre={split_params.min_clips_per_genre} "
            "clips; add music or lower that param"
        )
    noise = catalogue[catalogue["kind"] == "noise"]
    seed, fraction = split_params.seed, split_params.test_fraction
    music_split = {
        "stratified": lambda: stratified_split(music, fraction, seed),
        "gtzan_seed": lambda: gtzan_seed_split(music, seed),
        "gtzan_filtered": lambda: gtzan_filtered_split(music),
    }[music_method]()
    noise_split = {
        "stratified": lambda: stratified_split(noise, fraction, seed),
        "esc50_original": lambda: esc50_original_split(noise),
        "folds": lambda: fold_split(noise, split_params.noise_test_folds),
    }[noise_method]()
    table = pd.concat([music.assign(split=music_split), noise.assign(split=noise_split)])
    unlisted = int(table["split"].isna().sum())
    table = table.dropna(subset=["split"]).sort_values(["kind", "clip_id"]).reset_index(drop=True)
    for kind in ("music", "noise"):
        for side in ("train", "test"):
            if not ((table["kind"] == kind) & (table["split"] == side)).any():
                raise SourceError(f"the {side} split has no {kind} clips; add data or change split.test_fraction")
    facts = {
        "music_method": music_method,
        "noise_method": noise_method,
        "dropped_genres": dropped,
        "dropped_unlisted": unlisted,
    }
    return table, facts
