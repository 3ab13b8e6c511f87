"""`dm2v` console script: classify and denoise real files, format conversion, user errors (exit 2, no traceback)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from danet_music2vec import checkpoints, cli
from danet_music2vec.audio import resample
from danet_music2vec.classification import Classifier
from danet_music2vec.separation import Separator
from tests.conftest import separate_params
from tests.factories import music2vec_file, separator_file, tiny_separator_params

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "music"
ROCK = sorted((SAMPLE / "rock").glob("*.ogg"))
CLASSICAL = sorted((SAMPLE / "classical").glob("*.ogg"))
PCM16 = 2 / 32768  # what writing 16-bit audio may change in a sample


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real music2vec file (as train_music2vec exports it) of an untrained tiny network with two genres."""
    assert ROCK and CLASSICAL, "data/sample/music is missing"
    return music2vec_file(tmp_path_factory.mktemp("m2v") / "music2vec.pt", ["classical", "rock"])


@pytest.fixture(scope="module")
def tiny_separator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real models/separator.pt (as the separate stage writes it): a tiny mask network + params.yaml's separate settings."""
    return separator_file(tmp_path_factory.mktemp("sep") / "separator.pt", settings=separate_params(device="cpu"))


def classify_output(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, float], str]:
    code = cli.main(["classify", *args])
    out, err = capsys.readouterr()
    rows = [line.split() for line in out.splitlines()[1:]]
    return code, {genre: float(p) for genre, p in rows}, err


def test_classify_prints_top_genres_with_probabilities(tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, top, err = classify_output(capsys, str(ROCK[0]), "--model", str(tiny_model), "--top", "3")
    assert code == 0, err
    assert set(top) == {"classical", "rock"}  # --top 3 of a 2-genre model prints both
    assert sum(top.values()) == pytest.approx(1.0, abs=2e-3)
    assert list(top.values()) == sorted(top.values(), reverse=True)
    code, top1, _ = classify_output(capsys, str(ROCK[0]), "--model", str(tiny_model), "--top", "1")
    assert code == 0 and list(top1) == list(top)[:1]


def test_stereo_file_at_another_rate_is_converted(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mono, rate = sf.read(ROCK[0], dtype="float32")
    assert rate == 22050
    t = torch.from_numpy(mono)
    import torchaudio.functional as taf

    at_44k = taf.resample(t, 22050, 44100).numpy()
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([at_44k, at_44k], axis=1), 44100, subtype="FLOAT")
    _, expected, _ = classify_output(capsys, str(ROCK[0]), "--model", str(tiny_model))
    code, got, err = classify_output(capsys, str(stereo), "--model", str(tiny_model))
    assert code == 0, err
    assert list(got) == list(expected)
    for genre in expected:
        assert got[genre] == pytest.approx(expected[genre], abs=0.02)


def test_missing_model_names_the_stage_to_run(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["classify", str(ROCK[0])]) == 2
    assert "models/music2vec.pt not found: run `dvc repro train_music2vec` (or pass --model)" in capsys.readouterr().err
    assert cli.main(["denoise", str(ROCK[0]), "-o", "out.wav", "--model", "models/separator.pt"]) == 2
    assert "models/separator.pt not found: run `dvc repro separate` (or pass --model)" in capsys.readouterr().err
    assert not (tmp_path / "out.wav").exists()


def test_missing_separator_for_classify_denoise(tiny_model: Path, tmp_path: Path, capsys) -> None:
    code = cli.main(["classify", str(ROCK[0]), "--model", str(tiny_model), "--denoise", "--separator", str(tmp_path / "d.pt")])
    assert code == 2
    assert "d.pt not found: run `dvc repro separate` (or pass --separator)" in capsys.readouterr().err
    code = cli.main(["classify", str(ROCK[0]), "--model", str(tiny_model), "--denoise", "--adapted", str(tmp_path / "a.pt")])
    assert code == 2
    assert "a.pt not found: run `dvc repro adapt_music2vec` (or pass --adapted)" in capsys.readouterr().err


def test_the_old_danet_option_names_its_new_name(tiny_model: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["classify", str(ROCK[0]), "--model", str(tiny_model), "--danet", "x"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == "dm2v classify: error: --danet was renamed to --separator"


def test_unreadable_or_missing_audio_gives_the_audio_error(tiny_model: Path, tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF but not really a wave file")
    assert cli.main(["classify", str(junk), "--model", str(tiny_model)]) == 2
    err = capsys.readouterr().err
    assert "junk.wav: cannot be read as audio" in err and "Traceback" not in err
    assert "data." not in err  # pipeline params mean nothing to someone denoising one file
    assert cli.main(["classify", str(tmp_path / "absent.flac"), "--model", str(tiny_model)]) == 2
    assert "absent.flac: no such file" in capsys.readouterr().err


def test_corrupt_checkpoints_are_user_errors(tiny_model: Path, tmp_path: Path, capsys) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert cli.main(["classify", str(ROCK[0]), "--model", str(junk)]) == 2
    err = capsys.readouterr().err
    assert f"{junk}: not a music2vec checkpoint" in err and "dvc repro train_music2vec" in err
    # The real separator loader (danet_music2vec.separation) on a junk file.
    assert cli.main(["denoise", str(ROCK[0]), "-o", str(tmp_path / "o.wav"), "--model", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dm2v: error: {junk}") and "train_separator" in err and "Traceback" not in err


class RunsCode:
    """Pickles into a call of os.system: loading it with pickle would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_model_file_that_would_run_code_is_refused(tmp_path: Path, capsys) -> None:
    marker, evil = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"kind": "separator", "model_state": RunsCode(marker)}, evil)
    assert cli.main(["denoise", str(ROCK[0]), "-o", str(tmp_path / "o.wav"), "--model", str(evil)]) == 2
    err = capsys.readouterr().err
    assert not marker.exists()  # nothing ran
    assert err.count("\n") == 1 and err.startswith(f"dm2v: error: {evil}: ")
    assert not (tmp_path / "o.wav").exists()


def test_console_script_exits_2_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "danet_music2vec.cli", "classify", str(ROCK[0]), "--model", str(tmp_path / "x.pt")],
        capture_output=True, text=True, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 2
    assert "x.pt not found" in proc.stderr and "Traceback" not in proc.stderr


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["classify"])
    assert exited.value.code == 2 and "usage: dm2v classify" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        cli.main(["classify", str(ROCK[0]), "--top", "many"])
    assert exited.value.code == 2


def _stereo(tmp_path: Path, rate: int = 16000) -> tuple[Path, np.ndarray]:
    stereo = (0.2 * np.random.default_rng(0).standard_normal((rate, 2))).astype(np.float32)
    source = tmp_path / "in.wav"
    sf.write(source, stereo, rate, subtype="FLOAT")
    return source, np.ascontiguousarray(stereo.T)


def test_denoise_writes_the_music_with_the_input_rate_and_channels(tiny_separator: Path, tmp_path: Path, capsys) -> None:
    source, stereo = _stereo(tmp_path)
    out = tmp_path / "sub" / "clean.flac"
    argv = ["denoise", str(source), "-o", str(out), "--model", str(tiny_separator)]
    assert cli.main(argv) == 0  # default: the file's settings (output_rate full: masked at the file's own rate)
    assert "2 channel(s)" in capsys.readouterr().out
    written, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == 16000 and written.shape == (16000, 2)
    music = Separator.load(tiny_separator).separate(stereo, 16000).music
    np.testing.assert_allclose(written.T, np.clip(music, -1, 1), atol=PCM16)
    # --band-limited: the separator works (and answers) at 8 kHz; the file is still written at the input's rate.
    assert cli.main([*argv, "--band-limited"]) == 0
    written, rate = sf.read(out, dtype="float32", always_2d=True)
    assert rate == 16000 and written.shape == (16000, 2)
    low = Separator.load(tiny_separator, output_rate="stft").separate(stereo, 16000).music
    expected = resample(low, 8000, 16000)
    expected = np.pad(expected, ((0, 0), (0, max(0, 16000 - expected.shape[-1]))))[:, :16000]
    np.testing.assert_allclose(written.T, expected, atol=PCM16)
    assert cli.main(["denoise", str(source), "-o", str(tmp_path / "x.mp3"), "--model", str(tiny_separator)]) == 2
    assert "unsupported output format '.mp3'" in capsys.readouterr().err


@pytest.mark.parametrize("stored", [{}, {"overlap": 0.5, "mask_floor": 0.3}])
def test_denoise_gives_the_separate_stage_audio(stored: dict, tmp_path: Path) -> None:
    """`dm2v denoise` separates with the settings stored in the file, as the separate stage did when it wrote it."""
    cfg = tiny_separator_params("mask")
    settings = separate_params(device="cpu", **stored)  # {}: params.yaml's (overlap 0.25, output_rate full)
    path = separator_file(tmp_path / "separator.pt", cfg=cfg, settings=settings)
    # The separate stage's path: the network checkpoint + params.separate (stages/separate.py).
    network = {k: v for k, v in checkpoints.load(path, "separator").items() if k != "inference"}
    _, stereo = _stereo(tmp_path)
    mono = stereo.mean(0)  # the separate stage's mixtures are mono
    source = tmp_path / "mono.wav"
    sf.write(source, mono, 16000, subtype="FLOAT")
    stage_music = Separator.from_network(network, settings).separate(mono, 16000).music
    out = tmp_path / "clean.wav"
    assert cli.main(["denoise", str(source), "-o", str(out), "--model", str(path)]) == 0
    written, rate = sf.read(out, dtype="float32")
    assert rate == 16000
    np.testing.assert_allclose(written, np.clip(stage_music, -1, 1), atol=PCM16)
    # The stored settings matter: params.yaml's defaults would give other audio for the second file.
    if stored:
        default_music = Separator.from_network(network, separate_params(device="cpu")).separate(mono, 16000).music
        assert np.abs(default_music - stage_music).max() > 100 * PCM16


def test_classify_denoise_answers_with_the_rules_path(tiny_separator: Path, tiny_model: Path, tmp_path: Path, capsys) -> None:
    # The rule says the clean-trained classifier on the separated music: the answer must be exactly that.
    adapted = music2vec_file(tmp_path / "adapted.pt", ["classical", "rock"], seed=1,
                             rule={"path": "separated", "weight": 0.5, "gate_db": 3.0})  # fmt: skip
    cli.main(["classify", str(ROCK[0]), "--model", str(tiny_model), "--denoise", "--separator", str(tiny_separator),
              "--adapted", str(adapted)])  # fmt: skip
    assert "path separated" in capsys.readouterr().out.splitlines()[0]
    code, top, err = classify_output(
        capsys, str(ROCK[0]), "--model", str(tiny_model), "--denoise", "--separator", str(tiny_separator), "--adapted", str(adapted)
    )
    assert code == 0, err
    assert set(top) == {"classical", "rock"}
    classifier = Classifier.from_checkpoint(tiny_model)
    wave, rate = sf.read(ROCK[0], dtype="float32")
    music = Separator.load(tiny_separator).separate(wave, rate).music
    for genre, p in classifier.predict_top(music, Separator.load(tiny_separator).output_sample_rate(rate)):
        assert top[genre] == pytest.approx(p, abs=1e-3)
