import copy
import re
from typing import get_args

import pytest
import yaml

from danet_music2vec.params import RENAMED, ParamError, load_params, parse_params
from tests.conftest import REPO


@pytest.fixture
def params():
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repository_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert params.noises in (1, 2)
    assert params.separator.architecture in ("mask", "chimera", "danet")


@pytest.mark.parametrize("noises", [0, 3, "2", True, None])
def test_bad_noises_is_a_clear_error(params, noises):
    params["noises"] = noises
    with pytest.raises(ParamError, match="noises="):
        parse_params(params)


def test_unsupported_noises_names_the_fix(params):
    params["noises"] = 3
    with pytest.raises(ParamError, match=r"noises=3: is not supported; use 1 or 2"):
        parse_params(params)


@pytest.mark.parametrize(
    "key,value,message",
    [
        (("data", "profile"), "cloud", "data.profile='cloud'"),
        (("split", "test_fraction"), 1.5, "split.test_fraction=1.5"),
        (("mix", "snr_db"), [5, -5], r"mix.snr_db=\[5, -5\]: must be \[lo, hi\] with lo <= hi"),
        (("stft", "hop"), 0, "stft.hop=0"),
        (("separator", "architecture"), "unet", "separator.architecture='unet'"),
        (("separator", "epochs"), 2.5, "separator.epochs=2.5"),
        (("separate", "overlap"), 1.0, "separate.overlap=1.0"),
        (("score", "full_band"), "yes", "score.full_band='yes'"),
        (("score", "bss_eval"), "museval", "score.bss_eval='museval'"),
        (("sweep", "snr_db"), [0, 0], "sweep.snr_db=.*distinct"),
    ],
)
def test_bad_values_name_the_key(params, key, value, message):
    bad = copy.deepcopy(params)
    bad[key[0]][key[1]] = value
    with pytest.raises(ParamError, match=message):
        parse_params(bad)


def test_missing_key_is_an_error_not_a_default(params):
    del params["separator"]["loss"]
    with pytest.raises(ParamError, match="missing key 'separator.loss'"):
        parse_params(params)


def test_unknown_key_is_named(params):
    params["separator"]["hiden"] = 300
    with pytest.raises(ParamError, match="unknown key 'separator.hiden'"):
        parse_params(params)


def test_every_problem_is_one_line(params):
    del params["mix"]["seed"]
    params["stft"]["hop"] = 0
    with pytest.raises(ParamError) as err:
        parse_params(params)
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and all(line.startswith("params.yaml: ") for line in lines)


def test_old_names_name_the_new_ones(params):
    params["danet"] = {"epochs": 5, "objective": "mask"}
    params["separate"]["masks"] = "head"
    with pytest.raises(ParamError) as err:
        parse_params(params)
    message = str(err.value)
    assert "'danet.epochs' was renamed to 'separator.epochs'" in message
    assert "'danet.objective' was renamed to 'separator.architecture'" in message
    assert "'separate.masks' was removed" in message


def test_renamed_keys_exist_in_the_schema(params):
    parsed = parse_params(params).model_dump()
    for new in filter(None, RENAMED.values()):
        node = parsed
        for part in new.split("."):
            assert part in node, new
            node = node[part]


def test_cross_group_rule(params):
    params["separator"]["architecture"] = "danet"
    params["separate"]["danet"]["attractor"] = "anchored"
    with pytest.raises(ParamError, match="anchored"):
        parse_params(params)


def test_used_keeps_only_the_architecture_in_use(params):
    parsed = parse_params(params)
    used = parsed.separator.used()
    assert parsed.separator.architecture == "mask"
    assert "mask" in used and "danet" not in used and "chimera" not in used
    assert "danet" not in parsed.used()["separate"]


def test_the_tcn_group_is_the_tcn_architectures_only(params):
    params["separator"]["architecture"] = "tcn"
    parsed = parse_params(params)
    assert parsed.separator.embedding is None
    assert "tcn" in parsed.separator.used() and "mask" not in parsed.separator.used()
    assert parsed.used()["separate"]["tcn"] == {}


@pytest.mark.parametrize(
    "change,message",
    [
        ({"kernel": 4}, r"separator.tcn.kernel=4: must be odd: a non-causal convolution is centred on its frame"),
        ({"dilation": 2}, "unknown key 'separator.tcn.dilation'"),
        ({"channels": 0}, "separator.tcn.channels=0"),
        ({"blocks": 13}, "separator.tcn.blocks=13"),
        ({"repeats": 1.5}, "separator.tcn.repeats=1.5"),
        ({"blocks": 8}, r"separator.tcn.blocks=8: the largest dilation \(128 frames\) must be below stft.chunk_frames \(100\)"),
    ],
)
def test_bad_tcn_keys_name_the_key(params, change, message):
    params["separator"]["architecture"] = "tcn"
    params["separator"]["tcn"] |= change
    with pytest.raises(ParamError, match=message):
        parse_params(params)


def test_a_missing_tcn_key_is_an_error_for_any_architecture(params):
    del params["separator"]["tcn"]["repeats"]
    with pytest.raises(ParamError, match="missing key 'separator.tcn.repeats'"):
        parse_params(params)


def test_unreadable_params_file(tmp_path):
    (tmp_path / "params.yaml").write_text("noises: [\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


def test_assign_sets_an_existing_leaf_and_refuses_a_missing_one():
    from danet_music2vec.params import assign

    params = {"separator": {"hidden": 128, "danet": {"embedding_dim": 20}}}
    assign(params, "separator.danet.embedding_dim", 4)
    assert params["separator"]["danet"]["embedding_dim"] == 4
    for dotted in ("separator.hiden", "separatr.hidden", "separator.hidden.units"):
        with pytest.raises(KeyError, match=dotted.replace(".", r"\.")):
            assign(params, dotted, 1)
    assert params == {"separator": {"hidden": 128, "danet": {"embedding_dim": 4}}}


def test_score_bss_eval_takes_the_backends_metrics_knows(params):
    """score.bss_eval: mir_eval by default; fast_bss_eval accepted; the schema lists metrics' backends, no more."""
    from danet_music2vec.metrics import BSS_EVAL_BACKENDS

    assert load_params(REPO / "params.yaml").score.bss_eval == "mir_eval"
    for backend in BSS_EVAL_BACKENDS:
        params["score"]["bss_eval"] = backend
        assert parse_params(params).score.bss_eval == backend
    field = type(parse_params(params).score).model_fields["bss_eval"].annotation
    assert get_args(field) == BSS_EVAL_BACKENDS


def _lever_rows() -> list[tuple[list[str], list[str]]]:
    """docs/PARAMETERS.md's quality-lever table: each row's params and their stated defaults."""
    text = (REPO / "docs" / "PARAMETERS.md").read_text()
    table = text.split("## Quality levers")[1].split("\n## ")[0]
    rows = []
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        keys = re.findall(r"`([^`]+)`", cells[0])
        prefix = keys[0].rsplit(".", 1)[0]  # `a.b.c`, `d` -> a.b.c, a.b.d
        keys = [key if "." in key else f"{prefix}.{key}" for key in keys]
        rows.append((keys, [d.strip().strip("`") for d in re.split(r",\s(?![^\[]*\])", cells[1])]))
    return rows


def test_the_parameter_docs_state_params_yaml_defaults(params):
    """The quality-lever table's default column is what params.yaml says (it drifted twice before this test)."""
    rows = _lever_rows()
    assert len(rows) > 20
    for keys, defaults in rows:
        assert len(keys) == len(defaults), keys
        for key, default in zip(keys, defaults):
            value = params
            for part in key.split("."):
                value = value[part]
            assert yaml.safe_load(default) == value, f"docs/PARAMETERS.md says {key} defaults to {default}; params.yaml: {value}"


def test_key_value_items_parse_as_yaml_and_a_missing_key_or_equals_names_the_item():
    from danet_music2vec.params import parse_assignments

    assert parse_assignments(["stft.chunk_frames=400", "separator.train_snr_db=[-5, 5]", "separate.chunk_frames=null",
                              "x.name=a=b"]) == {"stft.chunk_frames": 400, "separator.train_snr_db": [-5, 5],
                                                 "separate.chunk_frames": None, "x.name": "a=b"}  # fmt: skip
    for item in ("stft.chunk_frames", "=400"):
        with pytest.raises(ParamError, match=repr(item)):
            parse_assignments([item])
