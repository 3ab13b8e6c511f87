"""Waves kept on disk rather than in memory: one float32 file of concatenated waves, read back a slice at a time.

adapt_music2vec fine-tunes on the separated music of 4 mixtures of every training track. At the `full`
profile's 700 tracks that is about 7 GB, which held in memory took the stage past 8 GiB
(docs/BENCHMARKS.md, cost curve). Training reads only random crops of it, so the stage writes the music
here and reads each crop from the file with an ordinary read: the operating system's page cache keeps
what fits, and the process itself holds none of it (unlike a memory map, whose touched pages count in
its resident memory). What is read back is what was written, bit for bit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

_ITEM = np.dtype(np.float32).itemsize


@dataclass(frozen=True)
class SpooledWave:
    """One mono float32 wave in a :class:`WaveSpool`'s file: ``len()`` and contiguous slices, like the array it was.

    Plain data (a path and two numbers), so it pickles to worker processes cheaply."""

    path: Path
    offset: int  # in samples, from the start of the file
    length: int  # in samples

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice):
            raise TypeError(f"a spooled wave is read by slices, not {type(index).__name__}")
        start, stop, step = index.indices(self.length)
        if step != 1:
            raise ValueError(f"a spooled wave is read by contiguous slices, not step {step}")
        count = max(stop - start, 0)
        return np.fromfile(self.path, dtype=np.float32, count=count, offset=(self.offset + start) * _ITEM)

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        wave = self[:]
        return wave if dtype is None else wave.astype(dtype)


class WaveSpool:
    """An append-only file of waves at ``path``, created empty (an earlier, interrupted run's file is overwritten)
    and removed on :meth:`close`; use it as a context manager."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # noqa: SIM115 -- closed by close(), which the context manager calls
        self._samples = 0

    def add(self, wave: np.ndarray) -> SpooledWave:
        """Write ``wave`` (1-D, converted to float32) at the end of the file; the handle that reads it back."""
        data = np.ascontiguousarray(wave, dtype=np.float32)
        if data.ndim != 1:
            raise ValueError(f"a spooled wave is mono: got shape {data.shape}")
        self._file.write(data.tobytes())
        self._file.flush()  # readers open the file by name
        spooled = SpooledWave(self.path, self._samples, len(data))
        self._samples += len(data)
        return spooled

    def close(self) -> None:
        """Close and remove the file: every :class:`SpooledWave` of it is then unreadable."""
        self._file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> WaveSpool:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()
