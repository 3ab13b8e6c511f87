import numpy as np
import pandas as pd
import pytest

from danet_music2vec.params import SplitParams
from danet_music2vec.data.splits import (
    esc50_original_split,
    fold_split,
    gtzan_filtered_split,
    gtzan_seed_split,
    split_clips,
    stratified_split,
)

GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]


def gtzan_catalogue() -> pd.DataFrame:
    ids = [f"music/{g}/{g}.{i:05d}" for g in GENRES for i in range(100)]
    frame = pd.DataFrame({"clip_id": ids, "kind": "music", "label": [i.split("/")[1] for i in ids]})
    return frame.assign(group=frame["clip_id"], fold=-1).sample(frac=1.0, random_state=3)  # order must not matter


def test_gtzan_seed_split_is_the_original_formula():
    clips = gtzan_catalogue()
    split = gtzan_seed_split(clips, seed=1)
    ordered = sorted(clips["clip_id"])
    expected = {ordered[i] for i in np.random.RandomState(1).permutation(1000)[-50:]}
    assert set(clips.loc[split == "test", "clip_id"]) == expected


def test_gtzan_filtered_split_uses_torchaudio_lists():
    clips = gtzan_catalogue()
    split = gtzan_filtered_split(clips)
    assert (split == "test").sum() == 290
    assert (split == "train").sum() == 443 + 197
    assert split.isna().sum() == 1000 - 930
    assert split[clips["clip_id"] == "music/blues/blues.00012"].item() == "test"


def test_esc50_original_split_takes_the_last_100_rows():
    clips = pd.DataFrame({"clip_id": [f"noise/{i:04d}" for i in range(2000)]}).sample(frac=1.0, random_state=0)
    split = esc50_original_split(clips)
    assert set(clips.loc[split == "test", "clip_id"]) == {f"noise/{i:04d}" for i in range(1900, 2000)}


def test_fold_split_and_missing_folds():
    clips = pd.DataFrame({"fold": [1, 2, 5, 5]})
    assert list(fold_split(clips, [5])) == ["train", "train", "test", "test"]
    with pytest.raises(ValueError, match="needs ESC-50 folds"):
        fold_split(pd.DataFrame({"fold": [-1, -1]}), [5])


def test_stratified_split_keeps_groups_whole_and_labels_on_both_sides():
    rows = [
        {"clip_id": f"c{g}{t}{e}", "label": f"g{g}", "group": f"g{g}t{t}"}
        for g in range(4) for t in range(5) for e in range(2)
    ]  # fmt: skip
    clips = pd.DataFrame(rows)
    split = stratified_split(clips, 0.3, seed=1)
    sides = clips.assign(split=split).groupby("group")["split"].nunique()
    assert (sides == 1).all()
    per_label = clips.assign(split=split).groupby(["label", "split"]).size().unstack()
    assert (per_label["test"] > 0).all() and (per_label["train"] > 0).all()
    assert (split == "test").mean() == pytest.approx(0.3, abs=0.05)
    assert split.equals(stratified_split(clips, 0.3, seed=1))
    assert not split.equals(stratified_split(clips, 0.3, seed=2))


def test_split_clips_drops_small_genres_and_reports_them():
    music = [{"clip_id": f"music/{g}/{i}", "kind": "music", "label": g, "group": f"{g}{i}", "fold": -1}
             for g, n in (("rock", 6), ("folk", 6), ("jazz", 1)) for i in range(n)]  # fmt: skip
    noise = [{"clip_id": f"noise/{i}", "kind": "noise", "label": f"n{i % 2}", "group": str(i), "fold": 1}
             for i in range(8)]  # fmt: skip
    params = SplitParams(music_method="auto", noise_method="auto", noise_test_folds=[5], test_fraction=0.3,
                         seed=1, min_clips_per_genre=4)  # fmt: skip
    table, facts = split_clips(pd.DataFrame(music + noise), params, "sample")
    assert facts["dropped_genres"] == {"jazz": 1}
    assert "jazz" not in set(table["label"])
    assert set(table["split"]) == {"train", "test"}
    with pytest.raises(ValueError, match="fewer than 2 genres"):
        split_clips(pd.DataFrame(music + noise), params.model_copy(update={"min_clips_per_genre": 7}), "sample")
