"""The network study (docs/NETWORKS.md): separator networks the CPU can train, compared at equal wall time.

Every network of :data:`NETWORKS` trains for the same wall time on the same threads, from the shipped
separator's data recipe (:data:`~danet_music2vec.pretrained.RECIPE`: 22.05 kHz, n_fft 1024, hop 256,
``bin_log1p`` input, SI-SDR loss, batch 32, training SNR -5..5 dB, the noise pool), with the same
dynamic mixer and the same seeds, so they see the same examples in the same order as far as each gets:

- ``blstm`` and ``tcn`` are pipeline architectures (``separator.architecture: mask`` / ``tcn``) and train
  with the pipeline's own loop (:func:`~danet_music2vec.separator_training.train_separator`,
  ``separator.budget_minutes``);
- ``convtasnet`` is torchaudio's Conv-TasNet on the waveform: :func:`train_waveform` is the same loop
  for a time-domain network (the mixer's examples through the inverse STFT, the same SI-SDR loss).

After every epoch each is scored on the same held-out validation mixtures
(:func:`~danet_music2vec.separator_training.validation_batches`); the learning curve is that score, less
the mixtures' own SI-SDR, against the training wall time. The best epoch's network is then timed on a
30 s track on 1 and 2 threads, in a fresh process each, which also gives its peak memory.
The shipped separator is timed as it ships and with ``separate.precision: int8``
(:func:`~danet_music2vec.devices.quantize_int8`).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import statistics
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import torch
from torch import nn
from torchaudio.models import ConvTasNet

from danet_music2vec import checkpoints
from danet_music2vec.atomic import atomic_path, write_json
from danet_music2vec.data.mixing import looped_mixture
from danet_music2vec.devices import bf16_is_native
from danet_music2vec.dsp import StftConfig, istft
from danet_music2vec.features import FeatureStore
from danet_music2vec.losses import si_sdr, si_sdr_loss
from danet_music2vec.params import Params, assign, parse_params
from danet_music2vec.plots import plot_learning_curves
from danet_music2vec.pretrained import RECIPE, SHIPPED
from danet_music2vec.separation import Separator
from danet_music2vec.separator_training import (
    EpochStats, learning_rate, make_mixers, step_seeds, train_separator, validation_batches,
)  # fmt: skip
from danet_music2vec.separator_training.loop import budget_spent

# Steps between two validations: a point of the learning curve every half minute or so on 2 threads.
STEPS_PER_EPOCH = 25
SPEED_SECONDS = 30.0  # the timed track
SPEED_REPEATS = 5

# torchaudio's ConvTasNet at a size a CPU trains: the encoder's 32-sample window (1.45 ms at 22.05 kHz, hop 16) is
# the paper's 2 ms; 2 x 6 blocks of 64/128 channels (paper: 3 x 8 of 128/512). Dilations up to 128 made a step take
# 90 times as long on this CPU (torch's depthwise dilated convolution), so each repeat stops at dilation 32.
CONV_TASNET: dict[str, Any] = {"num_sources": 2, "enc_kernel_size": 32, "enc_num_feats": 128, "msk_kernel_size": 3,
                               "msk_num_feats": 64, "msk_num_hidden_feats": 128, "msk_num_layers": 6,
                               "msk_num_stacks": 2, "msk_activate": "sigmoid"}  # fmt: skip


@dataclass(frozen=True)
class Network:
    """One network of the study: what it is, and its params.yaml overrides on top of the study's recipe."""

    what: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    time_domain: bool = False


NETWORKS: dict[str, Network] = {
    "blstm": Network("the shipped separator's network: 2 x 300 BLSTM + mask head (`separator.architecture: mask`)",
                     {"separator.architecture": "mask", "separator.hidden": 300, "separator.layers": 2}),
    "tcn": Network("Conv-TasNet's TCN over STFT frames + mask head (`separator.architecture: tcn`, params.yaml's "
                   "`separator.tcn`: 3 x 6 blocks of 128/256 channels, kernel 3)", {"separator.architecture": "tcn"}),
    "convtasnet": Network("torchaudio's ConvTasNet on the waveform: 32-sample encoder, 2 x 6 blocks of 64/128 channels, "
                          "gradient clipped at 5 (as the paper)", {"separator.grad_clip": 5.0}, time_domain=True),
}  # fmt: skip


def study_params(base: Mapping[str, Any], network: str, seed: int, minutes: float) -> Params:
    """``base`` (a params.yaml as data) with the shipped separator's recipe, the study's budget and ``network``'s keys."""
    raw = json.loads(json.dumps(base))
    overrides = dict(RECIPE) | {"separator.seed": seed, "separator.budget_minutes": minutes,
                                "separator.epochs": 100_000, "separator.steps_per_epoch": STEPS_PER_EPOCH,
                                "separator.device": "cpu", "separate.device": "cpu"} | dict(NETWORKS[network].overrides)  # fmt: skip
    for key, value in overrides.items():
        assign(raw, key, value)
    return parse_params(raw)


def conv_tasnet() -> nn.Module:
    """The study's ConvTasNet (:data:`CONV_TASNET`), freshly initialised: ``(B, 1, samples) -> (B, 2, samples)``, music first."""
    return ConvTasNet(**CONV_TASNET)


def waveforms(music: torch.Tensor, noise: torch.Tensor, cfg: StftConfig) -> torch.Tensor:
    """The sources of a batch of complex ``(B, T, F)`` STFT excerpts as waveforms ``(B, 2, samples)``, music first.

    The same inverse STFT and length as the si_sdr loss and validation of the mask networks use, so the
    time-domain network is scored against the same references.
    """
    return istft(torch.stack([music, noise], dim=1), cfg, (music.shape[1] - 1) * cfg.hop)


def _music_si_sdr(estimate: torch.Tensor, reference: torch.Tensor) -> tuple[float, int]:
    """Summed music SI-SDR over the examples whose music is audible, and their count (as ``validate`` counts)."""
    audible = reference.square().mean(-1) > 1e-10
    return float(si_sdr(estimate, reference)[audible].sum()), int(audible.sum())


def mixture_si_sdr(batches: list[tuple[torch.Tensor, torch.Tensor]], cfg: StftConfig) -> float:
    """Mean SI-SDR (dB) of the mixtures themselves against their music: what a network's score is an improvement on."""
    total = count = 0.0
    for music, noise in batches:
        sources = waveforms(music, noise, cfg)
        value, n = _music_si_sdr(sources.sum(1), sources[:, 0])
        total, count = total + value, count + n
    return total / count


def validate_waveform(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], cfg: StftConfig) -> float:
    """Mean music SI-SDR (dB) of a time-domain network on the validation batches."""
    model.eval()
    total = count = 0.0
    with torch.inference_mode():
        for music, noise in batches:
            sources = waveforms(music, noise, cfg)
            value, n = _music_si_sdr(model(sources.sum(1, keepdim=True))[:, 0], sources[:, 0])
            total, count = total + value, count + n
    model.train()
    return total / count


def train_waveform(store: FeatureStore, params: Params, model: nn.Module) -> tuple[list[EpochStats], dict[str, torch.Tensor], int]:
    """Train a time-domain network as :func:`train_separator` trains a mask network: the same mixers, seeds,
    learning rate, validation mixtures and budget, the SI-SDR loss on its waveforms.

    Returns the history, the best validation epoch's weights and that epoch. No checkpoint: a study run is short.
    """
    cfg, stft_cfg = params.separator, store.config
    train_mixer, val_mixer = make_mixers(store, cfg, params.noises)
    val_batches = validation_batches(val_mixer, cfg)
    torch.manual_seed(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history: list[EpochStats] = []
    best: dict[str, Any] = {"epoch": 0, "si_sdr": -math.inf, "state": None}
    for epoch in range(1, cfg.epochs + 1):
        if budget_spent(cfg, history):
            break
        start = time.perf_counter()
        loss_sum, seen = 0.0, 0
        for step, seeds in enumerate(step_seeds(cfg, epoch)):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, epoch, step)
            sources = waveforms(*train_mixer.batch(seeds), stft_cfg)
            loss, _ = si_sdr_loss(model(sources.sum(1, keepdim=True)), sources)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            loss_sum += float(loss.detach()) * len(seeds)
            seen += len(seeds)
        seconds = time.perf_counter() - start
        if not math.isfinite(loss_sum):
            raise FloatingPointError(f"the time-domain network diverged at epoch {epoch}; lower separator.lr")
        val_sdr = validate_waveform(model, val_batches, stft_cfg)
        if val_sdr > best["si_sdr"]:
            best = {"epoch": epoch, "si_sdr": val_sdr, "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        history.append(EpochStats(epoch, loss_sum / seen, seconds, seen, seen / seconds, "waveform", math.nan, val_sdr))
    return history, best["state"], best["epoch"]


def speed_track(sample_dir: Path, rate: int) -> np.ndarray:
    """The timed track: :data:`SPEED_SECONDS` of the sample's first music clip with its first noise clip at 0 dB, looped,
    mono at ``rate`` (bench/bench_denoise.py's track)."""
    music, noise = sorted((sample_dir / "music").rglob("*.ogg"))[0], sorted((sample_dir / "noise").glob("*.flac"))[0]
    return looped_mixture(music, noise, rate, SPEED_SECONDS)


def _predictor(kind: str, path: str) -> Callable[[np.ndarray, int], Any]:
    """What separates a track for :func:`time_inference`: the separator file at ``path`` with its own inference
    settings on the CPU (``stft``), the same with ``precision: int8`` (``int8``), or a ConvTasNet (``waveform``)."""
    if kind == "waveform":
        model = conv_tasnet()
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model.eval()

        def separate(wave: np.ndarray, rate: int) -> torch.Tensor:
            with torch.inference_mode():
                return model(torch.from_numpy(wave)[None, None])[0, 0]

        return separate
    return Separator.load(path, device="cpu", **({"precision": "int8"} if kind == "int8" else {})).separate


def time_inference(kind: str, path: str, wave: np.ndarray, rate: int, threads: int) -> dict[str, float]:
    """Real-time factor (median of :data:`SPEED_REPEATS` after a warm-up) of separating ``wave`` on ``threads``
    threads, and this process's peak resident memory; meant for a fresh process (:func:`inference_speed`)."""
    torch.set_num_threads(threads)
    separate = _predictor(kind, path)
    loaded = psutil.Process().memory_info().rss / 2**20
    separate(wave, rate)  # warm-up
    times = []
    for _ in range(SPEED_REPEATS):
        start = time.perf_counter()
        separate(wave, rate)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a spawned child reported its parent's memory
    # (2,291 MiB for a BLSTM whose own peak was 849 MiB).
    status = Path("/proc/self/status").read_text()
    peak = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024
    return {"threads": threads, "seconds": seconds, "x_real_time": len(wave) / rate / seconds,
            "loaded_rss_mib": loaded, "peak_rss_mib": peak}  # fmt: skip


def inference_speed(kind: str, path: str | Path, wave: np.ndarray, rate: int, threads: tuple[int, ...] = (1, 2)) -> list[dict[str, float]]:
    """:func:`time_inference` on each thread count, each in a fresh process, so neither the other's threads nor its
    memory peak count (the peak includes the interpreter and torch: compare networks by it, not with 0)."""
    runs = []
    for n in threads:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            runs.append(pool.submit(time_inference, kind, str(path), wave, rate, n).result())
    return runs


def run_network(store: FeatureStore, base: Mapping[str, Any], name: str, seed: int, minutes: float, work: Path,
                out: Path, wave: np.ndarray, threads: int = 2) -> dict[str, Any]:  # fmt: skip
    """Train ``name`` for ``minutes`` of wall time on ``threads`` threads, then time its best epoch; the record goes
    to ``out/<name>.json``, the network to ``work/<name>/``. A network with a record is not trained again."""
    record_path = out / f"{name}.json"
    if record_path.is_file():
        return json.loads(record_path.read_text())
    params = study_params(base, name, seed, minutes)
    if (store.config.sample_rate, store.config.n_fft, store.config.hop) != (params.stft.sample_rate, params.stft.n_fft, params.stft.hop):
        raise ValueError(f"{store.root}: features at {store.config.sample_rate} Hz / {store.config.n_fft} / {store.config.hop}, "
                         "not the recipe's STFT; run `scripts/network_study.py prepare` for the work folder")  # fmt: skip
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    _, val_mixer = make_mixers(store, params.separator, params.noises)
    baseline = mixture_si_sdr(validation_batches(val_mixer, params.separator), store.config)
    if NETWORKS[name].time_domain:
        torch.manual_seed(seed)  # its initial weights, as train_separator seeds the mask networks'
        model = conv_tasnet()
        history, state, best_epoch = train_waveform(store, params, model)
        with atomic_path(folder / "model.pt") as tmp:
            torch.save(state, tmp)
        kind = "waveform"
    else:
        result = train_separator(store, params.separator, folder / "checkpoint.pt", params.noises, progress=False)
        history, best_epoch, model = result.history, result.best_epoch, result.model
        # The separator file the pipeline's separate stage writes: the best epoch and its inference settings.
        inference = params.separate.used(params.separator.architecture)
        checkpoints.export(folder / "checkpoint.pt", folder / "model.pt", "separator", extra={"inference": inference})
        kind = "stft"
    seconds, examples = np.cumsum([h.seconds for h in history]), np.cumsum([h.chunks for h in history])
    record = {"network": name, "what": NETWORKS[name].what, "seed": seed, "budget_minutes": minutes, "threads": threads,
              "chunk_frames": store.config.chunk_frames,  # frames of every training example (the work folder's features)
              "parameters": sum(p.numel() for p in model.parameters()), "best_epoch": best_epoch,
              "validation": {"examples": params.separator.val_examples, "mixture_si_sdr": baseline},
              "curve": [{"epoch": h.epoch, "examples": int(n), "seconds": float(t), "val_si_sdr": h.val_si_sdr,
                         "val_si_sdri": h.val_si_sdr - baseline} for h, n, t in zip(history, examples, seconds)],
              "inference": inference_speed(kind, folder / "model.pt", wave, store.config.sample_rate)}  # fmt: skip
    write_json(record_path, record)
    return record


def shipped_int8(wave: np.ndarray, rate: int, out: Path) -> dict[str, Any]:
    """Speed and memory of the shipped separator as it ships and with ``precision: int8``: ``out/shipped.json``."""
    record = {"fp32": inference_speed("stft", SHIPPED, wave, rate), "int8": inference_speed("int8", SHIPPED, wave, rate),
              "bf16_native": bf16_is_native(torch.device("cpu"))}  # fmt: skip
    write_json(out / "shipped.json", record)
    return record


def _curve(record: dict[str, Any]) -> pd.DataFrame:
    table = pd.DataFrame(record["curve"])
    return table.assign(minutes=table["seconds"] / 60.0)


def int8_verdict(test: dict[str, Any]) -> str:
    """Whether int8 costs nothing measurable on the test mixtures: the paired interval holds 0 and |mean| < 0.05 dB."""
    diff = test["separators"]["shipped-int8"]["nsdr_full_vs_shipped"]
    lo, hi = diff["ci95"]
    free = lo <= 0.0 <= hi and abs(diff["mean"]) < 0.05
    return "costs nothing measurable" if free else "costs something measurable"


def network_report(out: Path, int8_test: Path, figure: Path) -> str:
    """docs/NETWORKS.md's generated part from the records in ``out`` and the int8 scores ``int8_test``
    (bench/bench_separators.py --precisions int8); draws the learning curves into ``figure``."""
    records = {path.stem: json.loads(path.read_text()) for path in sorted(out.glob("*.json")) if path.stem in NETWORKS}
    records = {name: records[name] for name in NETWORKS if name in records}
    curves = {name: _curve(r) for name, r in records.items()}
    plot_learning_curves(curves, figure, value="val_si_sdri", ylabel="validation SI-SDR improvement of the music (dB)")
    lines = [f"![validation SI-SDRi against training wall time]({figure.name})\n\n",
             "| network | what | parameters | epochs x steps | examples | best val SI-SDRi (dB) at min | last (dB) | "
             "x real time, 1 thread | 2 threads | peak RSS (MiB), 2 threads |\n|---|---|---|---|---|---|---|---|---|---|\n"]  # fmt: skip
    for name, r in records.items():
        t = curves[name]
        best = t.loc[t["val_si_sdri"].idxmax()]
        speed = {run["threads"]: run for run in r["inference"]}
        lines.append(f"| {name} | {r['what']} | {r['parameters'] / 1e6:.2f} M | {len(t)} x {STEPS_PER_EPOCH} | "
                     f"{int(t['examples'].iloc[-1]):,} | {best['val_si_sdri']:.2f} at {best['minutes']:.1f} | "
                     f"{t['val_si_sdri'].iloc[-1]:.2f} | {speed[1]['x_real_time']:.1f}x | {speed[2]['x_real_time']:.1f}x | "
                     f"{speed[2]['peak_rss_mib']:,.0f} |\n")  # fmt: skip
    if records:
        first = next(iter(records.values()))
        lines.insert(0, f"Every network trained {first['budget_minutes']:g} minutes of wall time on {first['threads']} "
                        f"threads (seed {first['seed']}); validation: the same {first['validation']['examples']} held-out "
                        f"mixtures for all (their own SI-SDR: {first['validation']['mixture_si_sdr']:.2f} dB), scored "
                        "after every epoch; the time to validate is not counted. Speed: a 30 s track at 22.05 kHz, "
                        "median of 5 after a warm-up, in a fresh process per thread count (peak RSS includes the "
                        "interpreter and torch).\n\n")  # fmt: skip
    shipped_path = out / "shipped.json"
    if shipped_path.is_file():
        shipped = json.loads(shipped_path.read_text())
        lines.append("\n### int8 dynamic quantization of the shipped separator\n\n| precision | x real time, 1 thread | "
                     "2 threads | peak RSS (MiB), 2 threads |\n|---|---|---|---|\n")  # fmt: skip
        for kind in ("fp32", "int8"):
            speed = {run["threads"]: run for run in shipped[kind]}
            lines.append(f"| {kind} | {speed[1]['x_real_time']:.1f}x | {speed[2]['x_real_time']:.1f}x | "
                         f"{speed[2]['peak_rss_mib']:,.0f} |\n")  # fmt: skip
    if int8_test.is_file():
        test = json.loads(int8_test.read_text())
        fp32, int8 = test["separators"]["shipped"], test["separators"]["shipped-int8"]
        lines.append(f"\nOn the sample's {test['mixtures']} test mixtures (GNSDR, dB; int8 - fp32 paired by mixture, "
                     "95% interval resampled by music clip):\n\n| | fp32 | int8 | int8 - fp32 [95% CI] |\n|---|---|---|---|\n")  # fmt: skip
        for key, label in (("8k", "8 kHz"), ("full", "full band")):
            diff = int8[f"nsdr_{key}_vs_shipped"]
            column = "gnsdr_8k" if key == "8k" else "gnsdr_full_band"
            lines.append(f"| {label} | {fp32[column]:.3f} | {int8[column]:.3f} | {diff['mean']:+.3f} "
                         f"[{diff['ci95'][0]:+.3f}, {diff['ci95'][1]:+.3f}] |\n")  # fmt: skip
        lines.append(f"\nBy the rule (interval holds 0 and |mean| < 0.05 dB, full band), int8 {int8_verdict(test)}.\n")
    return "".join(lines)
