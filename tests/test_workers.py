import os

import pytest
import torch

from danet_music2vec.workers import Finished, item_key, map_items, single_threaded, worker_count


def scaled_by(context: int, item: int) -> tuple[int, int, int]:
    """The item scaled by the context, with the process and thread count it ran under."""
    return context * item, os.getpid(), torch.get_num_threads()


def refuses(context: int, item: int) -> tuple[int, int, int]:
    """As ``scaled_by`` with pid 0, but item 3 fails."""
    if item == 3:
        raise ValueError(f"item {item} is bad")
    return context * item, 0, torch.get_num_threads()


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
        map_items(refuses, 1, list(range(6)), workers=2, desc="test", progress=False)


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


def test_a_killed_run_resumes_with_the_items_it_finished(tmp_path):
    finished = Finished(tmp_path / "finished", encode=list, decode=tuple)
    items = list(range(6))
    keys = [f"item{i}" for i in items]
    with pytest.raises(ValueError, match="item 3 is bad"):  # stopped at item 3: items 0-2 are kept
        map_items(refuses, 10, items, workers=1, desc="test", progress=False, finished=finished, keys=keys)
    assert sorted(p.name for p in (tmp_path / "finished").iterdir()) == ["item0.json", "item1.json", "item2.json"]

    again = Finished(tmp_path / "finished", encode=list, decode=tuple)
    results = map_items(scaled_by, 10, items, workers=2, desc="test", progress=False, finished=again, keys=keys)
    assert again.reused == 3
    assert results[:3] == [(0, 0, 1), (10, 0, 1), (20, 0, 1)]  # taken from the first run (pid 0), not computed again
    assert [r[0] for r in results[3:]] == [30, 40, 50] and all(r[1] != 0 for r in results[3:])
    again.remove()
    assert not (tmp_path / "finished").exists()


def test_a_result_file_that_does_not_decode_is_computed_again(tmp_path):
    finished = Finished(tmp_path, encode=lambda r: {"value": r[0]}, decode=lambda d: (d["value"], 0, 1))
    (tmp_path / "k0.json").write_text("{not json")
    (tmp_path / "k1.json").write_text('{"other": 1}')
    results = map_items(scaled_by, 2, [5, 6], workers=1, desc="test", progress=False, finished=finished, keys=["k0", "k1"])
    assert [r[0] for r in results] == [10, 12] and finished.reused == 0


def test_the_item_key_changes_with_the_files_it_reads(tmp_path):
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"one")
    before = item_key("settings", {"id": "m0", "offsets": [1, 2]}, [audio])
    assert item_key("settings", {"id": "m0", "offsets": [1, 2]}, [audio]) == before
    assert item_key("other settings", {"id": "m0", "offsets": [1, 2]}, [audio]) != before
    assert item_key("settings", {"id": "m0", "offsets": [1, 3]}, [audio]) != before
    audio.write_bytes(b"two")
    assert item_key("settings", {"id": "m0", "offsets": [1, 2]}, [audio]) != before
