import subprocess

import numpy as np

from danet_music2vec.experiments import card
from tests.experiments.conftest import save_experiment


def test_the_card_table_gives_each_start_in_each_condition_beside_the_oracle(tmp_path):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    score = {"separation.gnsdr": 6.0, "separation.oracle_irm.gnsdr": 12.0, "classification.clean.f1": 0.84,
             "classification.mixture.f1": 0.7, "classification.separated.f1": 0.8}  # fmt: skip
    save_experiment(tmp_path, card.card_name("shipped", 1, 0.0), np.zeros(4), score=score)
    save_experiment(tmp_path, card.card_name("scratch", 2, -5.0), np.zeros(4), score=score | {"separation.gnsdr": 3.0})
    rows = [line for line in card.card_table(tmp_path).splitlines() if line.startswith(("| shipped", "| scratch", "| fine"))]
    assert len(rows) == 2 * len(card.CONDITIONS) + 1  # fine-tuning in the first condition only
    assert rows[0].startswith("| shipped | 1 | 0 dB | 6.00 | 12.00 | - | 0.84 | 0.70 | 0.80 | 0.50 |")
    assert "| scratch | 2 | -5 dB | 3.00 |" in "\n".join(rows) and rows[1].startswith("| scratch | 1 | 0 dB | - |")
    assert rows[2].startswith("| finetune | 1 | 0 dB | - |")


def test_card_names_say_start_noises_and_snr():
    assert card.card_name("shipped", 2, -5.0) == "card-shipped-n2-snrm5"
    assert card.card_name("scratch", 1, 0.0) == "card-scratch-n1-snr0"
