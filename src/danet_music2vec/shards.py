"""Test-set shards: the stages that work on test mixtures (separate, classify, score, sweep) split over N tasks.

    python stages/score.py --shard 2/4      # the third of 4 blocks of the test mixtures

A shard run computes only its block of the test mixtures, keeps each finished mixture in the stage's
resume folder (``checkpoints/<stage>``, a :class:`~danet_music2vec.workers.Finished`) and stops there:
it writes none of the stage's outputs. The merge is the stage's ordinary run over the union of the
shards' folders: every mixture is taken from them and none is computed again, so the outputs are the
ones an unsharded run writes, bit for bit: each mixture is computed alike wherever it runs (one
thread, :mod:`~danet_music2vec.workers`) and the outputs are assembled in the test set's order.
Kubeflow's pipeline runs the shards of a stage in a ``ParallelFor`` and the merge after it
(:mod:`~danet_music2vec.kfp_pipeline.compiler`); DVC runs every stage unsharded.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from danet_music2vec.params import ParamError

_SPEC = re.compile(r"(\d+)/(\d+)")
# The stages that work on the test mixtures one by one and take a --shard; each keeps its mixtures in resume_folder().
SHARDED = ("separate", "classify", "score", "sweep")


def resume_folder(stage: str) -> str:
    """Where ``stage`` keeps each finished test mixture until its outputs are written: what a shard hands to the merge."""
    return f"checkpoints/{stage}"


def shard_specs(count: int) -> list[str]:
    """``--shard`` values of ``count`` shards: ``["0/4", "1/4", "2/4", "3/4"]``."""
    if count < 1:
        raise ParamError(f"test_shards={count}: need at least 1 shard")
    return [f"{k}/{count}" for k in range(count)]


@dataclass(frozen=True)
class Shard:
    """Block ``index`` (0-based) of ``count`` contiguous, near-equal blocks of the test mixtures."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"`` -> ``Shard(K, N)``; anything else is a ParamError naming the form."""
        match = _SPEC.fullmatch(text.strip())
        if match is None or not 0 <= int(match[1]) < int(match[2]):
            raise ParamError(f"--shard {text}: expected K/N with 0 <= K < N (e.g. --shard 0/4)")
        return cls(int(match[1]), int(match[2]))

    def take(self, frame: pd.DataFrame) -> pd.DataFrame:
        """This shard's rows of ``frame``, in its order (a shard past the end is empty)."""
        return frame.iloc[np.array_split(np.arange(len(frame)), self.count)[self.index]]

    def __str__(self) -> str:
        return f"shard {self.index}/{self.count}"


def shard_option(stage: str, argv: Sequence[str] | None = None) -> Shard | None:
    """The ``--shard K/N`` of a stage script's command line (None: the whole test set, as DVC runs it)."""
    parser = argparse.ArgumentParser(prog=f"stages/{stage}.py", description=f"DVC stage {stage}")
    parser.add_argument("--shard", metavar="K/N", help="compute only block K of N of the test mixtures (Kubeflow's fan-out)")
    text = parser.parse_args(argv).shard
    return None if text is None else Shard.parse(text)


def rows_of(shard: Shard | None, frame: pd.DataFrame) -> pd.DataFrame:
    """The test mixtures a run computes: every row of ``frame`` (no shard: as DVC runs the stage) or its shard's block."""
    return frame if shard is None else shard.take(frame)


def run_name(stage: str, shard: Shard | None) -> str:
    """The MLflow run name of a stage or of one of its shards (shards of one stage run at the same time)."""
    return stage if shard is None else f"{stage} {shard}"
