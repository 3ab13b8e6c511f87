"""What every stage script shares: the entry-point guard and timing.

A stage fails on bad input with one line naming the file or param and the fix,
and exit status 2, not a traceback; unexpected errors keep their traceback.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from danet_music2vec.audio import AudioError
from danet_music2vec.data.download import ArchiveError, DownloadError
from danet_music2vec.data.sources import SourceError
from danet_music2vec.errors import CheckpointError, DeviceError, StaleDataError, TrackingError
from danet_music2vec.params import ParamError

# Our own types only: a ValueError from a bug in our code or a library keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    AudioError, ArchiveError, CheckpointError, DeviceError, DownloadError, ParamError, SourceError, StaleDataError,
    TrackingError,
)


def run(main: Callable[[], None], name: str) -> None:
    """Call a stage's ``main``; report user errors as ``<stage>: error: ...`` and exit 2."""
    start = time.perf_counter()
    try:
        main()
    except FileNotFoundError as err:
        missing = err.filename or str(err)
        print(f"{name}: error: {missing}: not found; run the stages before it (`dvc repro {name}`)", file=sys.stderr)
        sys.exit(2)
    except USER_ERRORS as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"{name}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr)
