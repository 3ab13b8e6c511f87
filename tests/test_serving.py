"""`mlflow models serve` of the champion (the README's command), on 127.0.0.1: real audio in, cleaner audio out;
bad requests get a 4xx answer naming the problem and the server keeps serving."""

import base64
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from danet_music2vec import cli, tracking
from danet_music2vec.servers import ModelServer, model_server
from danet_music2vec.service import Limits
from danet_music2vec.tracking.packaging import log_audio_model
from danet_music2vec.tracking.registry import promote
from tests.conftest import separate_params
from tests.factories import banded_separator_file, music2vec_file

pytestmark = pytest.mark.slow  # starts a real scoring server (about 10 s)
RATE = 22050
MAX_SECONDS = 5.0


def mixture(seconds: float = 3.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Music (two low tones) and the mixture with white noise above 3 kHz at 0 dB: the clean source is known."""
    t = np.arange(int(seconds * RATE)) / RATE
    music = (0.2 * np.sin(2 * np.pi * 330 * t) + 0.1 * np.sin(2 * np.pi * 495 * t)).astype(np.float32)
    white = np.fft.rfft(np.random.default_rng(seed).standard_normal(t.size))
    white[np.fft.rfftfreq(t.size, 1 / RATE) < 3000] = 0
    noise = np.fft.irfft(white, t.size)
    noise = (noise * music.std() / noise.std()).astype(np.float32)
    return music, music + noise


def sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))


def b64(audio: np.ndarray, rate: int = RATE, fmt: str = "WAV") -> str:
    out = io.BytesIO()
    sf.write(out, audio, rate, format=fmt, subtype="FLOAT" if fmt == "WAV" else "PCM_16")
    return base64.b64encode(out.getvalue()).decode("ascii")


def post(server: ModelServer, body: bytes | dict, content_type: str = "application/json") -> tuple[int, dict | str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.url}/invocations", data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        text = err.read().decode()
        try:
            return err.code, json.loads(text)
        except json.JSONDecodeError:
            return err.code, text


@pytest.fixture(scope="module")
def serving_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serving")


@pytest.fixture(scope="module")
def server(serving_root: Path) -> Iterator[ModelServer]:
    """The champion of a store holding one packaged run (oracle separator, tiny classifier), served."""
    root = serving_root
    models = (
        banded_separator_file(root / "separator.pt", split_hz=2000, settings=separate_params(device="cpu")),
        music2vec_file(root / "music2vec.pt", ["classical", "rock"]),
        music2vec_file(root / "music2vec_adapted.pt", ["classical", "rock"], seed=1,
                       rule={"path": "gated", "weight": 0.5, "gate_db": 1.0}),
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        uri = tracking.tracking_uri(root)
        mp.setenv("DVC_ROOT", str(root))
        mp.setenv("DVC_EXP_NAME", "served")
        with tracking.stage_run("package", {"noises": 1}) as run:
            log_audio_model(run, *models, Limits(MAX_SECONDS), {"classification.product.f1": 0.5, "separation.gnsdr": 3.0})
        promote("danet-music2vec", uri)
    with model_server(root, "models:/danet-music2vec@champion", {"MLFLOW_TRACKING_URI": uri}) as running:
        yield running


def good_request(server: ModelServer) -> None:
    status, body = post(server, {"dataframe_records": [{"samples": [0.1, -0.1] * 4000, "sample_rate": 8000}]})
    assert status == 200, body


def test_the_served_champion_denoises_a_mixture_and_names_its_genre(server: ModelServer) -> None:
    music, mix = mixture()
    status, body = post(server, {"dataframe_records": [{"audio": b64(mix)}]})
    assert status == 200, body
    answer = body["predictions"][0]
    denoised, rate = sf.read(io.BytesIO(base64.b64decode(answer["music"])), dtype="float32")
    assert rate == RATE and denoised.shape == music.shape and answer["format"] == "flac"
    assert sdr(music, denoised) > sdr(music, mix) + 6.0, (sdr(music, denoised), sdr(music, mix))
    assert answer["genre"] in ("classical", "rock")
    assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)


def test_the_served_model_and_dm2v_denoise_return_the_same_stereo_audio(
    server: ModelServer, serving_root: Path, tmp_path: Path
) -> None:
    _, left = mixture(seed=1)
    _, right = mixture(seed=2)
    stereo = np.stack([left, 0.5 * right], axis=1)  # (frames, channels), as soundfile writes
    song = tmp_path / "song.wav"
    sf.write(song, stereo, RATE, subtype="FLOAT")
    status, body = post(server, {"dataframe_records": [{"audio": base64.b64encode(song.read_bytes()).decode()}]})
    assert status == 200, body
    answer = body["predictions"][0]
    served, rate = sf.read(io.BytesIO(base64.b64decode(answer["music"])), dtype="float32", always_2d=True)
    assert cli.main(["denoise", str(song), "-o", str(tmp_path / "clean.flac"), "--model", str(serving_root / "separator.pt")]) == 0
    local, local_rate = sf.read(tmp_path / "clean.flac", dtype="float32", always_2d=True)
    assert rate == local_rate == RATE and answer["channels"] == 2
    assert answer["separator"].startswith("a separator trained by the pipeline")  # says which one it holds
    assert served.shape == local.shape == stereo.shape
    np.testing.assert_allclose(served, local, atol=1.5 / 32768)  # both 16-bit: the same samples


@pytest.mark.parametrize(
    "row, problem",
    [
        ({"audio": base64.b64encode(b"<html>not audio</html>" * 20).decode()}, "not an audio file"),
        ({"audio": ""}, "empty"),
        ({"audio": b64(np.zeros((int(MAX_SECONDS + 1) * 8000,), np.float32), 8000)}, "over the limit of 5 s"),
        ({"audio": b64(np.zeros(4000, np.float32), 4000)}, "sample rate 4000 Hz is not supported"),
        ({"audio": b64(np.zeros((800, 6), np.float32), 8000)}, "6 channels are not supported"),
        ({"samples": [0.0, 0.1]}, "'sample_rate' is missing"),
        ({"format": "flac"}, "exactly one of 'audio'"),
    ],
)
def test_a_bad_request_gets_a_400_naming_it_in_one_line_and_the_server_keeps_serving(
    server: ModelServer, row: dict, problem: str
) -> None:
    status, body = post(server, {"dataframe_records": [row]})
    assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert problem in body["message"] and "\n" not in body["message"], body["message"][:500]
    good_request(server)


@pytest.mark.parametrize(
    "body, content_type",
    [(b"{not json", "application/json"), ({"records": []}, "application/json"), (b"RIFF....WAVEfmt ", "audio/wav")],
)
def test_a_malformed_payload_gets_a_4xx_and_the_server_keeps_serving(server: ModelServer, body: bytes | dict, content_type: str) -> None:
    # MLflow's own parser answers these (its messages quote the payload over several lines).
    status, _ = post(server, body, content_type)
    assert 400 <= status < 500
    good_request(server)
