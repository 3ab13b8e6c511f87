"""Data-parallel training under a real `torchrun` with 2 CPU processes (gloo) against 1 process.

Each `torchrun` call runs tests/distributed_worker.py; rank 0 reports as JSON.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pydantic import ValidationError

from danet_music2vec import checkpoints
from danet_music2vec.distributed import World, join, launched
from danet_music2vec.features import FeatureStore
from danet_music2vec.music2vec_training import train
from danet_music2vec.params import ParamError, SeparatorParams
from danet_music2vec.separator_training import train_separator
from tests.distributed_worker import first_step_gradients
from tests.separator_training.test_loop import make_store, small
from tests.test_music2vec_training import toy_clips, toy_config

WORKER = Path(__file__).with_name("distributed_worker.py")


def torchrun(nproc: int, mode: str, config: dict, out: Path, *args: Path) -> dict:
    """Run the worker under `torchrun --standalone` with ``nproc`` CPU processes; rank 0's report."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", str(WORKER),
               mode, json.dumps(config), str(out), *map(str, args)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")} | {"OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()) if out.suffix == ".json" else {}


def as_json(cfg: SeparatorParams) -> dict:
    return cfg.model_dump(mode="json")


def load(path: Path) -> dict:
    return checkpoints.load(path, "separator")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> FeatureStore:
    return make_store(tmp_path_factory.mktemp("features"))


def test_one_process_world_is_a_no_op() -> None:
    world = World()
    assert world.is_main and not world.distributed and not launched()
    assert world.share([1, 2, 3]) == [1, 2, 3] and world.sum([1, 2.5]) == [1.0, 2.5]
    counts = torch.ones(2, 3)
    assert world.sum(counts) is counts
    model = torch.nn.Linear(2, 2)
    assert world.wrap(model) is model
    with join("cpu") as joined:
        assert joined == World()


def test_shares_are_equal_contiguous_slices_or_a_param_error() -> None:
    seeds = list(range(8))
    assert [World(rank=r, size=2).share(seeds) for r in (0, 1)] == [seeds[:4], seeds[4:]]
    with pytest.raises(ParamError, match=r"separator.batch_size=8 is not divisible by the 3 training processes"):
        World(rank=0, size=3).share(seeds, "separator.batch_size")
    for bad in (0, -1, 1.5, True, "2"):  # the schema checks the process count
        with pytest.raises(ValidationError, match="nproc"):
            small(nproc=bad)


@pytest.mark.parametrize("architecture", ["mask", "chimera"])
def test_two_processes_with_half_batches_give_the_whole_batch_gradient(store: FeatureStore, tmp_path: Path,
                                                                       architecture: str) -> None:  # fmt: skip
    cfg = small(architecture=architecture, dropout=0.0)
    one = first_step_gradients(store, cfg, World())
    torchrun(2, "separator-grad", as_json(cfg), tmp_path / "two.pt", store.root)
    two = torch.load(tmp_path / "two.pt")
    assert one.keys() == two.keys() and len(one) > 4
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-6, msg=name)
    assert any(float(g.abs().max()) > 1e-4 for g in one.values())  # the comparison is not between zeros


def test_separator_trains_under_two_processes_and_resumes_under_one_and_back(store: FeatureStore, tmp_path: Path) -> None:
    # chimera: the mean training attractors are summed over the processes too.
    cfg = small(architecture="chimera", epochs=3, steps_per_epoch=3, dropout=0.0)
    straight = train_separator(store, cfg, tmp_path / "straight.pt", progress=False)

    first = torchrun(2, "separator-train", as_json(cfg.model_copy(update={"epochs": 1})), tmp_path / "a.json", store.root,
                     tmp_path / "ck.pt")  # fmt: skip
    assert first["world_size"] == 2 and first["start_epoch"] == 1 and load(tmp_path / "ck.pt")["epoch"] == 1
    middle = train_separator(store, cfg.model_copy(update={"epochs": 2}), tmp_path / "ck.pt", progress=False)  # 2 processes -> 1
    assert middle.start_epoch == 2
    last = torchrun(2, "separator-train", as_json(cfg), tmp_path / "b.json", store.root, tmp_path / "ck.pt")  # 1 -> 2
    assert last["start_epoch"] == 3 and load(tmp_path / "ck.pt")["complete"]
    # The batch is global and every example has its own seed: the same run, whatever the process count.
    torch.testing.assert_close(torch.tensor(last["losses"]), torch.tensor(straight.losses), rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(torch.tensor(last["val"]), torch.tensor([h.val_si_sdr for h in straight.history]),
                               rtol=1e-3, atol=1e-3)  # fmt: skip
    assert last["losses"][-1] < last["losses"][0]
    # The last epoch's mean training attractors, summed over the 2 processes' shares.
    torch.testing.assert_close(load(tmp_path / "ck.pt")["train_attractors"],
                               load(tmp_path / "straight.pt")["train_attractors"], rtol=1e-3, atol=1e-5)  # fmt: skip


def test_music2vec_trains_under_two_processes_and_resumes_under_one_and_back(tmp_path: Path) -> None:
    ck = tmp_path / "m2v.pt"
    first = torchrun(2, "music2vec-train", {"epochs": 3}, tmp_path / "a.json", Path(""), ck)
    assert first["world_size"] == 2 and first["start_epoch"] == 1 and len(first["losses"]) == 3
    middle = train(toy_config(epochs=4), toy_clips(4, seed=0), ck, progress=False)  # 2 processes -> 1
    assert middle.resumed_from_epoch == 3 and len(middle.history) == 4
    last = torchrun(2, "music2vec-train", {"epochs": 5}, tmp_path / "b.json", Path(""), ck)  # 1 -> 2
    assert last["start_epoch"] == 5 and len(last["losses"]) == 5
    assert last["losses"][:4] == [h["loss"] for h in middle.history]
    # It learns (low tones from high tones): the loss falls every epoch, under either process count.
    assert all(b < a for a, b in zip(last["losses"], last["losses"][1:])) and last["losses"][-1] < 0.75 * last["losses"][0]
