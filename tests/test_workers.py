import os

import pytest
import torch

from danet_music2vec.workers import map_items, single_threaded, worker_count


def scaled_by(context: int, item: int) -> tuple[int, int, int]:
    """The item scaled by the context, with the process and thread count it ran under."""
    return context * item, os.getpid(), torch.get_num_threads()


def refuses(context: int, item: int) -> int:
    if item == 3:
        raise ValueError(f"item {item} is bad")
    return item


def test_items_come_back_in_order_from_single_threaded_workers():
    items = list(range(7))
    here = map_items(scaled_by, 10, items, workers=1, desc="test", progress=False)
    spawned = map_items(scaled_by, 10, items, workers=2, desc="test", progress=False)
    assert [r[0] for r in here] == [r[0] for r in spawned] == [10 * i for i in items]
    assert {r[1] for r in here} == {os.getpid()}
    assert os.getpid() not in {r[1] for r in spawned}
    assert {r[2] for r in here} == {r[2] for r in spawned} == {1}  # one thread per item, wherever it runs


def test_a_failing_item_raises_its_own_error_from_a_worker():
    with pytest.raises(ValueError, match="item 3 is bad"):
        map_items(refuses, None, list(range(6)), workers=2, desc="test", progress=False)


def test_zero_workers_is_refused():
    with pytest.raises(ValueError, match="workers=0"):
        map_items(scaled_by, 1, [1], workers=0, desc="test", progress=False)


def test_single_threaded_restores_the_thread_count():
    before = torch.get_num_threads()
    with single_threaded():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_auto_is_one_worker_per_usable_core():
    assert worker_count("auto") == len(os.sched_getaffinity(0)) >= 1
    assert worker_count(3) == 3
