"""Tests for experiments.variants: the recipes are real params (in today's names); the rows undo one original choice at a time."""

from __future__ import annotations

import yaml

from danet_music2vec.experiments import variants
from danet_music2vec.experiments.records import upgrade_params
from danet_music2vec.params import lookup
from tests.conftest import REPO


def _params() -> dict:
    # params.yaml in today's names, whether or not the file has been renamed yet.
    return upgrade_params(yaml.safe_load((REPO / "params.yaml").read_text()))


def test_rows_go_from_the_original_to_the_defaults_one_fix_at_a_time():
    rows = list(variants.ablation_rows().values())
    assert len(rows) == len(variants.ABLATION_FIXES) + 1
    everything = {k: v for fix in variants.ABLATION_FIXES.values() for k, v in fix.overrides.items()}
    assert rows[0].overrides == everything and rows[-1].overrides == {}
    for before, after, fix in zip(rows, rows[1:], variants.ABLATION_FIXES.values()):
        assert before.overrides == after.overrides | fix.overrides and not set(after.overrides) & set(fix.overrides)
    params = _params()
    for key, original in everything.items():
        # Every key exists (a typo would silently add a new param) and each fix changes something.
        assert lookup(params, key) != original, key
    assert variants.ablation_name(0, 2) == "abl-00-original-n2"
    assert variants.ablation_variant_name(0, 1) == "abl-var-danet-head-n1"


def test_every_variant_overrides_existing_params_with_other_values():
    params = _params()
    recipes = variants.SEPARATOR_VARIANTS
    assert recipes["default"].overrides == variants.SCRATCH and recipes["default"].reference is None
    for name, variant in (recipes | variants.ABLATION_VARIANTS).items():
        assert variant.reference is None or variant.reference in recipes, name
        changed = []
        for dotted, value in variant.overrides.items():
            node = params
            for part in dotted.split("."):
                assert part in node, f"{name}: {dotted} is not in params.yaml"
                node = node[part]
            # Every comparison recipe states where its separator starts; only what it trains is compared here.
            changed.append(node != value and dotted != "separator.start")
        # A recipe may restate a default (to mean the same in every section), but it must change
        # something, unless it is the recipe the default adopted.
        assert name == "default" or any(changed) != variant.adopted, f"{name}: changes {'nothing' if not variant.adopted else 'something'}"
    assert variants.RUNNABLE_SEPARATORS == [name for name, variant in recipes.items() if not variant.adopted and not variant.retired]


def test_renamed_recipes_keep_their_recorded_experiments():
    assert variants.separator_name("default", 1, noises=2) == "sep-default-n2-s1" and variants.separator_name("default", 1) == "sep-default-s1"
    assert variants.separator_names("mask-network", 0) == ("sep-mask-network-s0", "sep-mask-baseline-s0")
    assert variants.separator_names("default", 2, noises=2) == ("sep-default-n2-s2",)
    for name, recipe in variants.SEPARATOR_VARIANTS.items():
        assert "baseline" not in name, name  # the mask network is the mask network; the spectral gate is a reference
        assert recipe.recorded_as not in variants.SEPARATOR_VARIANTS, name  # an old name never names another recipe
