"""Test-set shards: blocks that cover the test set once, in order, and the --shard option of the stage scripts."""

import pandas as pd
import pytest

from danet_music2vec.params import ParamError
from danet_music2vec.shards import Shard, rows_of, run_name, shard_option, shard_specs


@pytest.mark.parametrize("rows", [0, 1, 7, 45])
@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_shards_cover_every_row_once_in_order(rows: int, count: int) -> None:
    frame = pd.DataFrame({"mixture_id": [f"m{i:03d}" for i in range(rows)]}, index=range(100, 100 + rows))
    blocks = [Shard(k, count).take(frame) for k in range(count)]
    assert pd.concat(blocks).equals(frame)
    assert rows_of(None, frame) is frame and rows_of(Shard(0, count), frame).equals(blocks[0])
    sizes = [len(b) for b in blocks]
    assert max(sizes) - min(sizes) <= 1  # near-equal: no shard waits on a big one


def test_shard_specs_are_what_the_stages_parse() -> None:
    assert shard_specs(3) == ["0/3", "1/3", "2/3"]
    assert [Shard.parse(s) for s in shard_specs(2)] == [Shard(0, 2), Shard(1, 2)]
    with pytest.raises(ParamError, match="at least 1 shard"):
        shard_specs(0)


@pytest.mark.parametrize("text", ["3/3", "-1/2", "1", "a/b", "1/0", ""])
def test_a_bad_shard_names_the_form(text: str) -> None:
    with pytest.raises(ParamError, match=r"--shard .*: expected K/N with 0 <= K < N"):
        Shard.parse(text)


def test_the_stage_option_and_the_mlflow_run_name() -> None:
    assert shard_option("score", []) is None
    shard = shard_option("score", ["--shard", "2/4"])
    assert shard == Shard(2, 4)
    assert run_name("score", None) == "score" and run_name("score", shard) == "score shard 2/4"
