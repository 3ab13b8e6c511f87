"""The factor study: every recipe is valid params, pools are left out by view, runs pair by seed and mixture."""

from pathlib import Path

import pandas as pd
import pytest

from danet_music2vec.experiments.factors import (FACTORS, PLAIN, best_epoch_separator, evaluation_mixers, factor_table, pool_view,
                                                 recipe_params, run_factor)
from danet_music2vec.features import FeatureStore, write_features
from danet_music2vec.params import load_params, read_params_yaml
from tests.separator_training.test_loop import CFG, RATE, synth_clips, synth_load

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    root = tmp_path_factory.mktemp("features")
    clips = synth_clips(6)
    pool = pd.DataFrame([{"clip_id": f"separation/extra/{kind}{i}", "kind": kind, "group": f"pool-{kind}{i}",
                          "path": f"{kind}:{40 + i}"} for kind in ("music", "noise") for i in range(6)])  # fmt: skip
    write_features(pd.concat([clips, pool], ignore_index=True), CFG, root, sample_rate=RATE, load=synth_load, progress=False)
    return FeatureStore(root)


def test_every_recipe_is_the_plain_one_with_its_factor() -> None:
    base = read_params_yaml(REPO / "params.yaml")
    for name, factor in FACTORS.items():
        sep = recipe_params(base, factor, seed=2, budget_minutes=3).separator
        assert sep.seed == 2 and sep.budget_minutes == 3 and sep.start == "scratch"
        expected = PLAIN | dict(factor.overrides)
        assert sep.input_norm == expected["separator.input_norm"] and sep.loss == expected["separator.loss"]
        assert sep.batch_size == expected["separator.batch_size"]


def test_a_recipe_without_pools_sees_none_of_their_clips(store: FeatureStore) -> None:
    pooled = store.index["clip_id"].str.startswith("separation/")
    assert pool_view(store, "none").index["clip_id"].str.startswith("separation/").sum() == 0
    noise_only = pool_view(store, "noise").index
    assert set(noise_only.loc[noise_only["clip_id"].str.startswith("separation/"), "kind"]) == {"noise"}
    assert len(pool_view(store, "both")) == len(store) and pooled.sum() == 12
    # A view reads the same frames as the store.
    row = pool_view(store, "none").clips("music").iloc[0]
    assert (pool_view(store, "none").frames("music", int(row["start"]), 3) == store.frames("music", int(row["start"]), 3)).all()


def test_evaluation_music_is_held_out_from_every_recipe(store: FeatureStore) -> None:
    mixers = evaluation_mixers(store, 0.34, seed=3)
    assert set(mixers) == {"profile", "pool"}
    assert set(mixers["pool"].music["clip_id"].str.startswith("separation/")) == {True}


def test_runs_pair_by_seed_and_mixture(store: FeatureStore, tmp_path: Path) -> None:
    base = read_params_yaml(REPO / "params.yaml")
    base["separator"] |= {"hidden": 8, "val_examples": 8}
    for name in ("plain", "batch-8"):
        summary = run_factor(store, base | {"separator": base["separator"]}, name, 0, 1e-6, tmp_path, n_eval=6)
        assert summary["epochs"] == 1
    table = factor_table(tmp_path)
    assert set(table["recipe"]) == {"plain", "batch-8"} and set(table["music"]) == {"profile", "pool"}
    plain = table[table["recipe"] == "plain"]
    assert plain["vs_plain"].isna().all()
    other = table[table["recipe"] == "batch-8"]
    assert (other["vs_plain_lo"] <= other["vs_plain"]).all() and (other["vs_plain"] <= other["vs_plain_hi"]).all()


def test_later_seeds_are_tested_as_the_first_were_whatever_params_yaml_says(store: FeatureStore, tmp_path: Path) -> None:
    base = read_params_yaml(REPO / "params.yaml")
    base["separator"] |= {"hidden": 8, "val_examples": 8}
    run_factor(store, base, "plain", 0, 1e-6, tmp_path, n_eval=2)
    settings = load_params(REPO / "params.yaml").separate.model_copy(update={"chunk_frames": 2600, "precision": "int8"})
    separator = best_epoch_separator(tmp_path / "plain-s0", settings)
    assert separator.chunk_frames == CFG.chunk_frames and separator.precision == "fp32"
