"""The service behind the served model: request checks (one line each), and the same audio and label as `dm2v`."""

import base64
import io

import numpy as np
import pytest
import soundfile as sf
import torch

from danet_music2vec.service import Limits, RequestError, Service, decode_request
from tests.conftest import separate_params, tone
from tests.factories import music2vec_file, separator_file

torch.set_num_threads(1)
LIMITS = Limits(max_seconds=2.0)


def file_b64(audio: np.ndarray, rate: int, fmt: str = "WAV", subtype: str = "PCM_16") -> str:
    out = io.BytesIO()
    sf.write(out, audio, rate, format=fmt, subtype=subtype)
    return base64.b64encode(out.getvalue()).decode("ascii")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Service:
    root = tmp_path_factory.mktemp("models")
    sep = separator_file(root / "separator.pt", settings=separate_params(device="cpu"))
    adapted = music2vec_file(root / "music2vec_adapted.pt", ["classical", "rock"], seed=1,
                             rule={"path": "combined", "weight": 0.5, "gate_db": 3.0})  # fmt: skip
    return Service.load(sep, music2vec_file(root / "music2vec.pt", ["classical", "rock"]), adapted, LIMITS)


def test_a_file_and_its_samples_decode_alike_channels_first() -> None:
    left, right = tone(1.0, 22050, 440), tone(1.0, 22050, 660)
    stereo = np.stack([left, right], axis=1)
    from_file = decode_request({"audio": file_b64(stereo, 22050, subtype="FLOAT")}, LIMITS)
    from_samples = decode_request({"samples": stereo.reshape(-1).tolist(), "sample_rate": 22050.0, "channels": 2}, LIMITS)
    assert from_file.rate == from_samples.rate == 22050 and from_file.format == "flac"
    np.testing.assert_allclose(from_file.wave, np.stack([left, right]), atol=1e-6)
    np.testing.assert_allclose(from_samples.wave, from_file.wave, atol=1e-6)


@pytest.mark.parametrize(
    "row, problem",
    [
        ({"audio": base64.b64encode(b"this is not audio, just text" * 10).decode()}, "not an audio file"),
        ({"audio": ""}, "empty \\(0 bytes\\)"),
        ({"audio": file_b64(np.zeros(0, np.float32), 22050)}, "empty \\(0 samples\\)"),
        ({"audio": file_b64(tone(2.5, 8000), 8000)}, "2.5 s long, over the limit of 2 s \\(serve.max_seconds\\)"),
        ({"audio": file_b64(tone(0.5, 4000), 4000)}, "sample rate 4000 Hz is not supported"),
        ({"audio": file_b64(np.zeros((800, 6), np.float32), 8000)}, "6 channels are not supported"),
        ({"audio": "%%% not base64 %%%"}, "not valid base64"),
        ({"audio": 42}, "must be a base64 string"),
        ({}, "exactly one of 'audio'"),
        ({"audio": file_b64(tone(0.5, 8000), 8000), "samples": [0.0, 0.1], "sample_rate": 8000}, "exactly one of"),
        ({"samples": [0.0, 0.1, 0.2]}, "'sample_rate' is missing"),
        ({"samples": [0.0, 0.1, 0.2], "sample_rate": 8000.5}, "must be a whole number"),
        ({"samples": [0.0, 0.1, 0.2], "sample_rate": 8000, "channels": 2}, "3 samples do not split into 2 channels"),
        ({"samples": [0.0, float("nan")], "sample_rate": 8000}, "NaN or infinite"),
        ({"samples": [], "sample_rate": 8000}, "empty \\(0 samples\\)"),
        ({"audio": file_b64(tone(0.5, 8000), 8000), "format": "mp3"}, "'format'='mp3' is not supported"),
        ({"audio": file_b64(tone(0.5, 8000), 8000), "volume": 11}, "unknown field\\(s\\) 'volume'"),
    ],
)
def test_a_bad_request_is_named_in_one_line(row: dict, problem: str) -> None:
    with pytest.raises(RequestError, match=problem) as err:
        decode_request(row, LIMITS)
    assert "\n" not in str(err.value)


def test_the_answer_is_music_at_the_input_rate_and_length_with_probabilities(service: Service) -> None:
    wave = tone(1.3, 16000, 440)
    for fmt in ("flac", "wav"):
        row = service.answer({"audio": file_b64(wave, 16000), "format": fmt})
        music, rate = sf.read(io.BytesIO(base64.b64decode(row["music"])), dtype="float32")
        assert rate == row["sample_rate"] == 16000 and music.shape == wave.shape and row["format"] == fmt
        assert row["genre"] in ("classical", "rock") and row["genre"] == max(row["probabilities"], key=row["probabilities"].get)
        assert sum(row["probabilities"].values()) == pytest.approx(1.0)
        assert row["path"] == "combined"  # the rule stored in the adapted classifier's file
