import copy

import pytest
import yaml

from danet_music2vec.params import ParamError, load_params, parse_snr, validate
from tests.conftest import REPO


@pytest.fixture
def params():
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repository_params_are_valid():
    assert load_params(REPO / "params.yaml")["noises"] in (1, 2)


@pytest.mark.parametrize("noises", [0, 3, "2", True, None])
def test_bad_noises_is_a_clear_error(params, noises):
    params["noises"] = noises
    with pytest.raises(ParamError, match="noises=.*use 1 or 2"):
        validate(params)


@pytest.mark.parametrize(
    "key,value,message",
    [
        (("data", "profile"), "cloud", "data.profile"),
        (("split", "test_fraction"), 1.5, "split.test_fraction"),
        (("mix", "snr_db"), [5, -5], "mix.snr_db"),
        (("stft", "hop"), 0, "stft.hop"),
    ],
)
def test_bad_values_name_the_key(params, key, value, message):
    bad = copy.deepcopy(params)
    bad[key[0]][key[1]] = value
    with pytest.raises(ParamError, match=message):
        validate(bad)


def test_missing_key_is_named(params):
    del params["mix"]["seed"]
    with pytest.raises(ParamError, match="missing 'mix.seed'"):
        validate(params)


def test_snr_forms():
    assert parse_snr(None) is None
    assert parse_snr(0) == 0.0
    assert parse_snr([-5, 5]) == (-5.0, 5.0)
    with pytest.raises(ParamError):
        parse_snr("loud")


def test_unreadable_params_file(tmp_path):
    (tmp_path / "params.yaml").write_text("noises: [\n")
    with pytest.raises(ParamError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")
