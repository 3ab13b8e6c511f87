"""Tests for danet_music2vec.plots: every figure is a real PNG, written atomically."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from danet_music2vec.plots import plot_categories, plot_confusion, plot_curves

PNG = b"\x89PNG\r\n\x1a\n"


def test_plot_confusion_writes_png_atomically(tmp_path) -> None:
    path = tmp_path / "plots" / "confusion_clean.png"
    plot_confusion(np.array([[2, 1], [0, 3]]), ["rock", "folk"], "clean music", path)
    assert path.read_bytes()[:8] == PNG
    assert [p.name for p in path.parent.iterdir()] == ["confusion_clean.png"]  # no temp file left
    with pytest.raises(ValueError, match="does not match"):
        plot_confusion(np.zeros((2, 2)), ["a", "b", "c"], "bad", tmp_path / "bad.png")


def test_plot_curves_and_categories(tmp_path) -> None:
    gnsdr = pd.DataFrame({"snr_db": [-5, 0, 5], "separator": [4.0, 3.0, 2.0], "oracle_irm": [14.0, 12.0, 10.0]})
    f1 = pd.DataFrame({"snr_db": [-5, 0, 5], "clean": [0.9] * 3, "separated": [0.6, 0.7, 0.8]})
    plot_curves([(gnsdr, "GNSDR (dB)", "separation"), (f1, "weighted F1", "genre")], "snr_db", "input SNR (dB)",
                tmp_path / "curves.png")  # fmt: skip
    table = pd.DataFrame({"category": ["dog", "rain", "dog", "rain"], "input_snr_db": [0.0, 0.0, 5.0, 5.0],
                          "gnsdr": [1.0, -0.5, 0.5, -1.0]})  # fmt: skip
    plot_categories(table, "gnsdr", "input_snr_db", "GNSDR per noise", tmp_path / "categories.png")
    for name in ("curves.png", "categories.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["categories.png", "curves.png"]


def test_plot_spectrograms_writes_a_jpeg_for_a_jpg_path_at_the_size_asked(tmp_path) -> None:
    from matplotlib.image import imread

    from danet_music2vec.plots import plot_spectrograms

    wave = np.sin(2 * np.pi * 440 * np.arange(8000) / 8000).astype(np.float32)
    wave.flags.writeable = False  # as the mixture loader's cached clips
    path = tmp_path / "spectrograms.jpg"
    plot_spectrograms([("a", wave, 8000), ("b", wave[::2], 4000)], path, width=6.0, panel_height=1.5, dpi=50)
    assert path.read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG
    assert imread(path).shape[:2] == (150, 300)  # (2 x 1.5 in, 6 in) at 50 dpi
    assert [p.name for p in tmp_path.iterdir()] == ["spectrograms.jpg"]
