"""Which MLflow store the runs go to, whether it answers, and this project's experiment in it.

The store defaults to ``sqlite:///<repo>/mlflow.db`` with artifacts in ``<repo>/mlruns``;
``<repo>`` is ``DVC_ROOT`` when DVC sets it, so queued experiments, which run in temporary
copies of the repo, log to the same store. ``MLFLOW_TRACKING_URI`` overrides the store
(e.g. a tracking server on PostgreSQL with artifacts on S3, which then also receives the
artifacts: clients need no S3 credentials). A server that cannot be reached stops the
stage before it computes anything, with one line naming ``MLFLOW_TRACKING_URI``.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from danet_music2vec.errors import TrackingError

EXPERIMENT = "danet-music2vec"


def repo_root() -> Path:
    """The repository whose mlflow.db collects the runs (``DVC_ROOT`` under DVC)."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else an absolute sqlite URI under the repo."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root or repo_root()) / 'mlflow.db'}"


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Raise :class:`TrackingError` if ``uri`` is a tracking server that does not answer.

    MLflow's own client retries for minutes before failing with a long traceback;
    one health request gives the user the one line that says what to fix.
    """
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as response:
            response.read()
    except (OSError, urllib.error.URLError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingError(
            f"MLFLOW_TRACKING_URI={uri}: the MLflow tracking server does not answer ({reason}); "
            "start it, or unset MLFLOW_TRACKING_URI to log to mlflow.db"
        ) from None


def ensure_experiment(client: Any, root: Path, uri: str) -> str:
    """The id of ``EXPERIMENT`` in ``client``'s store at ``uri``, created on first use (by whichever of two
    concurrent stages gets there first), with its artifacts in ``root/mlruns`` unless ``uri`` is a server."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    # A tracking server stores artifacts where its --artifacts-destination says; the
    # local default keeps them next to mlflow.db.
    location = None if uri.startswith(("http://", "https://")) else (root / "mlruns").as_uri()
    try:
        return client.create_experiment(EXPERIMENT, artifact_location=location)
    except MlflowException:
        return client.get_experiment_by_name(EXPERIMENT).experiment_id
