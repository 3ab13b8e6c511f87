import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from danet_music2vec import audio as audio_module
from danet_music2vec.audio import AudioError, load_audio, resample, save_audio
from tests.conftest import tone, write_audio


def test_stereo_is_mixed_down_and_odd_rate_resampled(tmp_path):
    left, right = tone(1.0, 44100, 440), tone(1.0, 44100, 660)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 44100)
    audio = load_audio(path, 22050)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.shape[0] == 22050
    expected = resample((left + right) / 2, 44100, 22050)
    np.testing.assert_allclose(audio, expected, atol=1e-4)


def test_channels_are_kept_on_request_and_written_back(tmp_path):
    left, right = tone(1.0, 44100, 440), 0.5 * tone(1.0, 44100, 660)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    audio = load_audio(path, 44100, mono=False)
    assert audio.shape == (2, 44100) and audio.dtype == np.float32
    np.testing.assert_allclose(audio, np.stack([left, right]), atol=1e-6)
    save_audio(tmp_path / "back.flac", audio, 44100)
    back, rate = sf.read(tmp_path / "back.flac", dtype="float32", always_2d=True)
    assert rate == 44100 and back.shape == (44100, 2)
    np.testing.assert_allclose(back.T, audio, atol=1e-4)  # 16-bit


@pytest.mark.parametrize("suffix,fmt", [(".flac", "FLAC"), (".ogg", "OGG"), (".au", "AU"), (".wav", "WAV")])
def test_reads_every_supported_format(tmp_path, suffix, fmt):
    path = tmp_path / f"clip{suffix}"
    sf.write(path, tone(1.0, 22050), 22050, format=fmt)
    assert load_audio(path, 22050).shape[0] == 22050


@pytest.mark.parametrize(
    "content,problem",
    [
        (b"", "cannot be read"),
        (b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk", "cannot be read"),
    ],
)
def test_corrupt_file_names_the_file_and_fix(tmp_path, content, problem):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError) as err:
        load_audio(path, 22050)
    assert str(path) in str(err.value) and problem in str(err.value)
    assert "re-export" in str(err.value)


def test_empty_silent_short_and_missing_files_are_rejected(tmp_path):
    cases = {
        "empty": (np.zeros(0, np.float32), "is empty"),
        "silent": (np.zeros(22050, np.float32), "is silent"),
        "short": (tone(0.5, 22050), "too short"),
    }
    for name, (audio, problem) in cases.items():
        path = write_audio(tmp_path / f"{name}.wav", audio, 22050)
        with pytest.raises(AudioError, match=problem) as err:
            load_audio(path, 22050, min_seconds=1.0)
        assert err.value.path == path
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "nope.wav", 22050)


def test_save_audio_is_atomic_and_counts_clipping(tmp_path):
    path = tmp_path / "out" / "clip.flac"
    clipped = save_audio(path, np.array([0.0, 1.5, -2.0, 0.5], np.float32), 8000)
    assert clipped == 2
    assert [p.name for p in path.parent.iterdir()] == ["clip.flac"]
    assert np.abs(sf.read(path)[0]).max() <= 1.0


@pytest.mark.parametrize("rates", [(44100, 22050), (48000, 22050), (22050, 8000), (8000, 22050)])
@pytest.mark.parametrize("samples", [4000, 4001, 9999])
def test_long_signals_are_resampled_in_blocks_exactly_as_whole(monkeypatch, rates, samples):
    orig, new = rates
    audio = np.random.default_rng(samples).standard_normal((2, samples)).astype(np.float32)
    whole = torchaudio.functional.resample(torch.from_numpy(audio), orig, new).numpy()
    monkeypatch.setattr(audio_module, "RESAMPLE_BLOCK", 1000)  # several blocks, each with its margins
    blocked = resample(audio, orig, new)
    assert blocked.shape == whole.shape
    # Within the convolution's float32 rounding (a missing margin would be off by the signal's own scale, about 1).
    np.testing.assert_allclose(blocked, whole, atol=1e-4, rtol=0)
    np.testing.assert_allclose(resample(audio[0], orig, new), whole[0], atol=1e-4, rtol=0)
