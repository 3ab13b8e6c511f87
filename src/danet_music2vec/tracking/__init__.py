"""MLflow tracking: the only package that imports mlflow, and only inside its functions.

One *parent* run per pipeline execution, found again by its ``pipeline_key`` tag; every
stage opens a *child* run under it (:mod:`.runs`). The store is ``mlflow.db`` in the repo
unless ``MLFLOW_TRACKING_URI`` names another (:mod:`.store`); the parent carries the git,
DVC, params and data hashes that lead back to what made it (:mod:`.provenance`).
:mod:`.queries` reads recorded pipelines back (and deletes them); :mod:`.copying` moves
runs from one store to another.

Importing this package does not import mlflow (the CLI's audio commands must not pay for
it); each function imports what it uses.
"""

from __future__ import annotations

import logging
import os

from danet_music2vec.tracking.copying import COPIED_FROM_TAG, copy_runs
from danet_music2vec.tracking.provenance import DATA_MANIFEST, PIPELINE_WRITES, TRACE_TAGS, pipeline_key, trace_tags
from danet_music2vec.tracking.queries import delete_pipeline_runs, pipeline_metrics
from danet_music2vec.tracking.runs import KEY_TAG, StageRun, flatten, stage_run
from danet_music2vec.tracking.store import EXPERIMENT, check_reachable, repo_root, tracking_uri

__all__ = [
    "COPIED_FROM_TAG",
    "DATA_MANIFEST",
    "EXPERIMENT",
    "KEY_TAG",
    "PIPELINE_WRITES",
    "TRACE_TAGS",
    "StageRun",
    "check_reachable",
    "copy_runs",
    "delete_pipeline_runs",
    "flatten",
    "pipeline_key",
    "pipeline_metrics",
    "repo_root",
    "stage_run",
    "trace_tags",
    "tracking_uri",
]

logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)
# Against a server MLflow prints two "View run" lines per finished run, after one more request.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
