"""Error types for user-fixable problems that have no home module of their own.

A stage prints these as one line and exits 2 (``danet_music2vec.stage``); any other
exception is a bug and keeps its traceback. Each message names the file or param
and the fix.
"""

from __future__ import annotations


class CheckpointError(ValueError):
    """A model checkpoint is missing, unreadable, unfinished or of another format."""


class StaleDataError(ValueError):
    """An input changed after the stage that derived data from it ran; the fix names the stage to rerun."""


class TrackingError(RuntimeError):
    """The MLflow tracking store cannot be reached; the message names ``MLFLOW_TRACKING_URI``."""


class DeviceError(RuntimeError):
    """The device asked for (``cuda``) is not available on this machine."""
