"""The network study: its recipes, the time-domain training loop, int8 quantization and the report."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torchaudio.models import ConvTasNet

from danet_music2vec.experiments.networks import (
    NETWORKS, int8_verdict, mixture_si_sdr, network_report, study_params, train_waveform,
)  # fmt: skip
from danet_music2vec.features import FeatureStore
from danet_music2vec.params import read_params_yaml
from danet_music2vec.pretrained import RECIPE
from danet_music2vec.separator_training import make_mixers, validation_batches
from tests.conftest import REPO, parsed_params
from tests.separator_training.test_loop import make_store

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    return make_store(tmp_path_factory.mktemp("features"))


def test_every_network_trains_on_the_shipped_recipe_for_the_same_budget() -> None:
    base = read_params_yaml(REPO / "params.yaml")
    for name in NETWORKS:
        params = study_params(base, name, seed=1, minutes=8.0)
        cfg = params.separator
        assert (cfg.start, cfg.seed, cfg.budget_minutes, cfg.loss, cfg.input_norm, cfg.batch_size) == (
            "scratch", 1, 8.0, "si_sdr", "bin_log1p", 32)
        assert cfg.train_snr_db == (-5.0, 5.0) and params.stft.sample_rate == RECIPE["stft.sample_rate"]
        assert params.data.separation_noise_dirs == ["data/extra-noise"]
    assert study_params(base, "tcn", 0, 1.0).separator.architecture == "tcn"
    assert study_params(base, "blstm", 0, 1.0).separator.hidden == 300
    assert study_params(base, "convtasnet", 0, 1.0).separator.grad_clip == 5.0


def test_a_time_domain_network_trains_on_the_same_mixtures_and_stops_at_its_budget(store: FeatureStore) -> None:
    params = parsed_params(separator={"epochs": 5, "steps_per_epoch": 6, "batch_size": 8, "lr": 1e-2, "val_fraction": 0.34,
                                      "val_examples": 16, "seed": 3, "train_snr_db": [-5, 5], "budget_minutes": None})  # fmt: skip
    torch.manual_seed(0)
    model = ConvTasNet(2, enc_kernel_size=16, enc_num_feats=32, msk_num_feats=16, msk_num_hidden_feats=32, msk_num_layers=3,
                       msk_num_stacks=1)  # fmt: skip
    history, best, best_epoch = train_waveform(store, params, model)
    assert [h.epoch for h in history] == list(range(1, 6)) and all(h.chunks == 48 for h in history)
    assert best_epoch == 1 + int(np.argmax([h.val_si_sdr for h in history]))
    _, val = make_mixers(store, params.separator, params.noises)
    baseline = mixture_si_sdr(validation_batches(val, params.separator), store.config)
    # The mixtures are about 0 dB; the network learns to take the tones out of the gated noise.
    assert max(h.val_si_sdr for h in history) > baseline + 3.0, ([h.val_si_sdr for h in history], baseline)
    assert set(best) == set(model.state_dict())

    spent = params.model_copy(update={"separator": params.separator.model_copy(update={"budget_minutes": 1e-4})})
    assert len(train_waveform(store, spent, model)[0]) == 1  # the budget is spent after the first epoch


def _record(name: str, values: list[float]) -> dict:
    curve = [{"epoch": i + 1, "examples": 800 * (i + 1), "seconds": 30.0 * (i + 1), "val_si_sdr": v + 1.0, "val_si_sdri": v}
             for i, v in enumerate(values)]  # fmt: skip
    speed = [{"threads": n, "seconds": 30 / (50 * n), "x_real_time": 50.0 * n, "loaded_rss_mib": 400.0, "peak_rss_mib": 900.0}
             for n in (1, 2)]  # fmt: skip
    return {"network": name, "what": NETWORKS[name].what, "seed": 0, "budget_minutes": 1.5, "threads": 2,
            "parameters": 2_000_000, "best_epoch": 2, "validation": {"examples": 512, "mixture_si_sdr": -1.0},
            "curve": curve, "inference": speed}  # fmt: skip


def _int8_test(mean: float, ci: list[float]) -> dict:
    scores = {"gnsdr_8k": 5.4, "gnsdr_full_band": 5.9}
    diff = {"mean": mean, "ci95": ci}
    return {"mixtures": 45, "separators": {"shipped": scores, "shipped-int8": scores | {
        "nsdr_8k_vs_shipped": diff, "nsdr_full_vs_shipped": diff}}}  # fmt: skip


def test_the_report_tabulates_every_network_and_says_what_int8_costs(tmp_path: Path) -> None:
    out = tmp_path / "networks"
    out.mkdir()
    for name, values in (("blstm", [2.0, 4.5, 4.0]), ("tcn", [3.0, 5.0, 6.0])):
        (out / f"{name}.json").write_text(json.dumps(_record(name, values)))
    shipped = [{"threads": n, "x_real_time": 80.0 * n, "peak_rss_mib": 700.0} for n in (1, 2)]
    (out / "shipped.json").write_text(json.dumps({"fp32": shipped, "int8": shipped, "bf16_native": False}))
    (tmp_path / "sep_int8.json").write_text(json.dumps(_int8_test(-0.01, [-0.03, 0.02])))
    text = network_report(out, tmp_path / "sep_int8.json", tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0
    rows = [line for line in text.splitlines() if line.startswith("| blstm") or line.startswith("| tcn")]
    assert len(rows) == 2 and "| 4.50 at 1.0 | 4.00 |" in rows[0] and "| 6.00 at 1.5 | 6.00 |" in rows[1]
    assert "1.5 minutes of wall time on 2 threads" in text and "| 50.0x | 100.0x |" in rows[0]
    assert "| int8 | 80.0x | 160.0x |" in text and "int8 costs nothing measurable" in text
    assert int8_verdict(_int8_test(-0.08, [-0.12, -0.03])) == "costs something measurable"
    assert int8_verdict(_int8_test(-0.06, [-0.12, 0.01])) == "costs something measurable"  # |mean| is not under 0.05
