"""PNG figures of the stages' results (confusion matrices, SNR curves, GNSDR per noise category).

Every figure uses matplotlib's object-oriented Figure with an Agg canvas: no pyplot global
state and no display needed, whatever backend the caller configured. Files are written
atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib import ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from danet_music2vec.atomic import atomic_path


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str], dpi: int = 100) -> None:
    """PNG, or JPEG for a ``.jpg`` path: spectrograms' noise-like texture makes a PNG about 15 times larger."""
    fig.tight_layout()
    jpeg = Path(path).suffix.lower() in (".jpg", ".jpeg")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="jpeg" if jpeg else "png", dpi=dpi, **({"pil_kwargs": {"quality": 85}} if jpeg else {}))


def plot_confusion(
    matrix: np.ndarray, labels: Sequence[str], title: str, path: str | os.PathLike[str]
) -> None:
    """Write a confusion-matrix heat map with counts to ``path``."""
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(labels):
        raise ValueError(f"confusion matrix shape {m.shape} does not match {len(labels)} labels.")
    size = max(4.0, 0.6 * len(labels) + 2.0)
    fig = _figure(size, size)
    ax = fig.add_subplot()
    image = ax.imshow(m, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(len(labels)), labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = m.max() / 2.0 if m.size and m.max() > 0 else 0.0
    for (i, j), value in np.ndenumerate(m):
        ax.text(j, i, f"{value:g}", ha="center", va="center", color="white" if value > threshold else "black")
    _save(fig, path)


def plot_curves(
    panels: Sequence[tuple[pd.DataFrame, str, str]], x: str, xlabel: str, path: str | os.PathLike[str]
) -> None:
    """One panel per ``(table, ylabel, title)``; every column of ``table`` except ``x`` is a line."""
    fig = _figure(5.0 * len(panels), 4.0)
    for k, (table, ylabel, title) in enumerate(panels, start=1):
        ax = fig.add_subplot(1, len(panels), k)
        for column in table.columns.drop(x):
            ax.plot(table[x], table[column], marker="o", label=str(column))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def plot_categories(table: pd.DataFrame, value: str, series: str | None, title: str, path: str | os.PathLike[str]) -> None:
    """Horizontal dot plot of ``value`` per ``category`` (one colour per ``series`` value), sorted by the mean."""
    order = table.groupby("category")[value].mean().sort_values().index.tolist()
    fig = _figure(6.0, max(3.0, 0.3 * len(order) + 1.5))
    ax = fig.add_subplot()
    position = {c: i for i, c in enumerate(order)}
    groups = table.groupby(series) if series else [(None, table)]
    for name, part in groups:
        label = None if series is None else f"{series} = {name:g}" if isinstance(name, float) else f"{series} = {name}"
        ax.plot(part[value], part["category"].map(position), "o", label=label)
    ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(order)), labels=order)
    ax.set_xlabel(value)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    if series:
        ax.legend(fontsize="small")
    _save(fig, path)


def plot_ablation(tables: dict[str, pd.DataFrame], title: str, path: str | os.PathLike[str]) -> None:
    """Ablation bars: GNSDR and separated-music F1 per row, one bar per table (e.g. per input SNR).

    Each table has ``row``, ``GNSDR``, ``F1 sep`` and ``F1 mix`` columns (None where not recorded).
    """
    fig = _figure(11.0, 4.0)
    width = 0.8 / max(len(tables), 1)
    for k, (column, ylabel) in enumerate([("GNSDR", "GNSDR (dB)"), ("F1 sep", "separated-music weighted F1")], start=1):
        ax = fig.add_subplot(1, 2, k)
        for i, (name, table) in enumerate(tables.items()):
            values = pd.to_numeric(table[column], errors="coerce")
            bars = ax.bar(table["row"] + (i - (len(tables) - 1) / 2) * width, values.fillna(0.0), width, label=name)
            if column == "F1 sep":
                mixture = pd.to_numeric(table["F1 mix"], errors="coerce")
                ax.scatter(table["row"] + (i - (len(tables) - 1) / 2) * width, mixture, marker="_", s=200,
                           color="black", zorder=3)  # fmt: skip
        ax.set_xticks(list(next(iter(tables.values()))["row"]))
        ax.set_xlabel("ablation row (0 = as the original)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {column}" + (" (dash: mixture F1)" if column == "F1 sep" else ""))
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize="small")
    _save(fig, path)


def plot_learning_curves(curves: dict[str, pd.DataFrame], path: str | os.PathLike[str], value: str = "val_si_sdr",
                         ylabel: str = "validation SI-SDR of the music (dB)") -> None:  # fmt: skip
    """Validation SI-SDR against training examples (left) and wall minutes (right), one line per run.

    Each table has ``examples``, ``minutes`` and ``value`` (the column plotted, ``ylabel``) per epoch.
    """
    fig = _figure(12.0, 4.5)
    for k, (x, label) in enumerate((("examples", "training examples (mixtures seen)"), ("minutes", "training wall time (min)")),
                                   start=1):  # fmt: skip
        ax = fig.add_subplot(1, 2, k)
        for name, table in curves.items():
            ax.plot(table[x], table[value], marker=".", label=name)
        ax.set_xscale("log")
        # Plain numbers at 1, 2 and 5 of each decade: a curve spanning less than a decade otherwise gets
        # every minor tick labelled in powers of ten, on top of each other.
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:,g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_spectrograms(panels: Sequence[tuple[str, np.ndarray, int]], path: str | os.PathLike[str],
                      n_fft: int = 1024, floor_db: float = 80.0, width: float = 10.0, panel_height: float = 2.4,
                      dpi: int = 100) -> None:  # fmt: skip
    """One spectrogram per ``(title, mono wave, rate)``, stacked, on one dB scale (0 dB: the loudest bin of all),
    frequency up to each wave's Nyquist: what a listener would compare by eye. A ``.jpg`` path writes a JPEG."""
    from danet_music2vec.dsp import StftConfig, stft  # the figure's own STFT: Hann, 75% overlap

    specs = []
    for title, wave, rate in panels:
        cfg = StftConfig(sample_rate=rate, n_fft=n_fft, hop=n_fft // 4, window="hann")
        mag = stft(torch.as_tensor(np.array(wave, dtype=np.float32)), cfg).abs().numpy()  # a copy: torch wants it writable
        specs.append((title, 20.0 * np.log10(np.maximum(mag, 1e-10)), rate, cfg.hop))
    top = max(float(db.max()) for _, db, _, _ in specs)
    fig = _figure(width, panel_height * len(specs))
    for i, (title, db, rate, hop) in enumerate(specs):
        ax = fig.add_subplot(len(specs), 1, i + 1)
        extent = (0.0, db.shape[0] * hop / rate, 0.0, rate / 2000.0)
        image = ax.imshow(db.T, origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=top - floor_db, vmax=top)
        ax.set_ylabel("kHz")
        ax.set_title(title, fontsize=10)
        if i == len(specs) - 1:
            ax.set_xlabel("seconds")
        fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01, label="dB")
    _save(fig, path, dpi)
