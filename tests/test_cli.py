"""`dm2v` console script: classify and denoise real files, format conversion, user errors (exit 2, no traceback)."""

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from danet_music2vec import cli
from danet_music2vec.audio import resample
from danet_music2vec.music2vec_training import Music2VecConfig, load_clip_set, save_checkpoint, train

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "music"
ROCK = sorted((SAMPLE / "rock").glob("*.ogg"))
CLASSICAL = sorted((SAMPLE / "classical").glob("*.ogg"))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny music2vec trained for one epoch on two real sample clips per genre."""
    assert ROCK and CLASSICAL, "data/sample/music is missing"
    root = tmp_path_factory.mktemp("m2v")
    rows = [
        dict(clip_id=p.stem, kind="music", label=p.parent.name, path=str(p), split="train")
        for p in ROCK[:2] + CLASSICAL[:2]
    ]
    cfg = Music2VecConfig(crop_seconds=1.0, test_hop_seconds=1.0, channels=(8, 8, 8), lstm_hidden=8, epochs=1,
                          crops_per_clip=2, batch_size=8, device="cpu")  # fmt: skip
    clips = load_clip_set(pd.DataFrame(rows), "/", cfg.sample_rate)
    result = train(cfg, clips, root / "ckpt.pt", progress=False)
    save_checkpoint(root / "music2vec.pt", result.model, result.classes, cfg, 1, result.history)
    return root / "music2vec.pt"


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
    assert cli.main(["denoise", str(ROCK[0]), "-o", "out.wav"]) == 2
    assert "models/danet.pt not found: run `dvc repro train_danet` (or pass --model)" in capsys.readouterr().err
    assert not (tmp_path / "out.wav").exists()


def test_missing_danet_for_classify_denoise(tiny_model: Path, tmp_path: Path, capsys) -> None:
    code = cli.main(["classify", str(ROCK[0]), "--model", str(tiny_model), "--denoise", "--danet", str(tmp_path / "d.pt")])
    assert code == 2
    assert "d.pt not found: run `dvc repro train_danet` (or pass --danet)" in capsys.readouterr().err


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
    # The real DANet loader (danet_music2vec.separation) on a junk file.
    assert cli.main(["denoise", str(ROCK[0]), "-o", str(tmp_path / "o.wav"), "--model", str(junk)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dm2v: error: {junk}") and "train_danet" in err and "Traceback" not in err


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


class HalvingSeparator:
    """Stands in for danet_music2vec.separation.Separator: music = half the input, at 8 kHz
    (the default STFT rate) unless output_rate="full"."""

    calls: list[tuple[int, str]] = []

    def __init__(self, output_rate: str) -> None:
        self.output_rate = output_rate

    @classmethod
    def from_checkpoint(cls, path, output_rate: str = "stft"):
        assert Path(path).is_file()
        return cls(output_rate)

    def output_sample_rate(self, input_rate: int) -> int:
        return input_rate if self.output_rate == "full" else 8000

    def separate(self, wave: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        HalvingSeparator.calls.append((sample_rate, self.output_rate))
        music = resample(0.5 * wave, sample_rate, self.output_sample_rate(sample_rate))
        return music, music


@pytest.fixture
def fake_separator(monkeypatch, tmp_path: Path) -> Path:
    module = types.ModuleType("danet_music2vec.separation")
    module.Separator = HalvingSeparator
    monkeypatch.setitem(sys.modules, "danet_music2vec.separation", module)
    HalvingSeparator.calls = []
    danet = tmp_path / "danet.pt"
    danet.write_bytes(b"checkpoint")
    return danet


def test_denoise_writes_mono_music_at_the_input_rate(fake_separator: Path, tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    stereo = (0.2 * rng.standard_normal((16000, 2))).astype(np.float32)
    source = tmp_path / "in.wav"
    sf.write(source, stereo, 16000, subtype="FLOAT")
    out = tmp_path / "sub" / "clean.flac"
    argv = ["denoise", str(source), "-o", str(out), "--model", str(fake_separator)]
    assert cli.main(argv) == 0  # default: the mask applied at the file's own rate
    written, rate = sf.read(out, dtype="float32")
    assert rate == 16000 and written.ndim == 1 and len(written) == 16000
    np.testing.assert_allclose(written, 0.5 * stereo.mean(axis=1), atol=1 / 32768)
    assert HalvingSeparator.calls == [(16000, "full")]
    # --band-limited: DANet works (and answers) at 8 kHz; the file is still written at the input's rate.
    assert cli.main([*argv, "--band-limited"]) == 0
    written, rate = sf.read(out, dtype="float32")
    assert rate == 16000 and len(written) == 16000 and HalvingSeparator.calls[-1] == (16000, "stft")
    expected = resample(resample(0.5 * stereo.mean(axis=1), 16000, 8000), 8000, 16000)
    np.testing.assert_allclose(written, expected, atol=1e-3)
    assert cli.main(["denoise", str(source), "-o", str(tmp_path / "x.mp3"), "--model", str(fake_separator)]) == 2
    assert "unsupported output format '.mp3'" in capsys.readouterr().err


def test_classify_denoise_classifies_the_separated_music(fake_separator: Path, tiny_model: Path, capsys) -> None:
    code, top, err = classify_output(
        capsys, str(ROCK[0]), "--model", str(tiny_model), "--denoise", "--danet", str(fake_separator)
    )
    assert code == 0, err
    assert HalvingSeparator.calls == [(22050, "full")] and set(top) == {"classical", "rock"}
