"""MLflow tracking: the only module that imports mlflow.

One *parent* run per pipeline execution, found again by its ``pipeline_key`` tag:
the DVC experiment name under ``dvc exp run`` (``DVC_EXP_NAME``), otherwise the git
revision plus a hash of params.yaml. Every stage opens a *child* run under it
(``parent_run_id`` works across processes, which is how DVC runs stages), logs its
params, metrics and artifacts, and may put headline numbers on the parent so the
MLflow UI compares experiments in one table.

The store defaults to ``sqlite:///<repo>/mlflow.db`` with artifacts in
``<repo>/mlruns``; ``<repo>`` is ``DVC_ROOT`` when DVC sets it, so queued
experiments, which run in temporary copies of the repo, log to the same store.
``MLFLOW_TRACKING_URI`` overrides the store (e.g. a tracking server on PostgreSQL).
"""

from __future__ import annotations

import hashlib
import time
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

EXPERIMENT = "danet-music2vec"
KEY_TAG = "pipeline_key"

logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)


def repo_root() -> Path:
    """The repository whose mlflow.db collects the runs (``DVC_ROOT`` under DVC)."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def tracking_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else an absolute sqlite URI under the repo."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root or repo_root()) / 'mlflow.db'}"


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (MLflow params and metrics are flat)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def pipeline_key(params: Mapping[str, Any]) -> str:
    """Name of this pipeline execution: DVC experiment name, else git rev + params hash."""
    if os.environ.get("DVC_EXP_NAME"):
        return os.environ["DVC_EXP_NAME"]
    digest = hashlib.sha256(yaml.safe_dump(dict(params), sort_keys=True).encode()).hexdigest()[:10]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, cwd=repo_root()
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        rev = "norev"
    return f"{rev}-{digest}"


class StageRun:
    """What a stage logs to its child run (and, for headline numbers, to the parent)."""

    def __init__(self, client: Any, run_id: str, parent_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.parent_id = parent_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        flat = flatten(params)
        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in flat.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._log_metrics(self.run_id, metrics, step)

    def log_parent_metrics(self, metrics: Mapping[str, float]) -> None:
        self._log_metrics(self.parent_id, metrics, None)

    def _log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in flatten(metrics).items() if _is_number(v)]
        self.client.log_batch(run_id, metrics=batch)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_model(self, model: Any, name: str, input_example: Any) -> None:
        """Log a torch model with a signature inferred from ``input_example`` (a numpy array)."""
        import mlflow
        import mlflow.pytorch
        import torch
        from mlflow.models import infer_signature

        model = model.to("cpu").eval()
        with torch.inference_mode():
            output = model(torch.as_tensor(input_example))
        output = output[0] if isinstance(output, tuple) else output
        signature = infer_signature(input_example, output.numpy())
        with mlflow.start_run(run_id=self.run_id):
            # Pickle, not MLflow's default torch.export ("pt2"): export needs a stored input
            # example, pins the batch size it saw, and cannot trace DANet's k-means.
            # Explicit requirements: MLflow would otherwise infer them in a subprocess that
            # re-imports the model (seconds per stage).
            mlflow.pytorch.log_model(
                model,
                name=name,
                signature=signature,
                serialization_format="pickle",
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _find_parent(client: Any, experiment_id: str, key: str) -> Any:
    """The parent run of pipeline ``key``, or None."""
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.{KEY_TAG} = '{key}' and tags.stage_kind = 'pipeline'", max_results=1
    )
    return found[0] if found else None


def _parent_run(client: Any, experiment_id: str, key: str, params: Mapping[str, Any]) -> str:
    from mlflow.entities import Param

    found = _find_parent(client, experiment_id, key)
    if found is not None:
        return found.info.run_id
    run = client.create_run(experiment_id, run_name=key, tags={KEY_TAG: key, "stage_kind": "pipeline"})
    flat = {k: str(v) for k, v in flatten(params).items()}
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in flat.items()])
    client.set_terminated(run.info.run_id)
    return run.info.run_id


@contextmanager
def stage_run(stage: str, params: Mapping[str, Any], groups: tuple[str, ...] = ()) -> Iterator[StageRun]:
    """Open a child run named ``stage`` under this pipeline execution's parent run.

    Logs the params of ``groups`` (plus top-level scalars such as ``noises``) on the
    child. The run ends FINISHED, or FAILED if the stage raises.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    root = repo_root()
    mlflow.set_tracking_uri(tracking_uri(root))
    client = MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(EXPERIMENT, artifact_location=(root / "mlruns").as_uri())
    )
    key = pipeline_key(params)
    parent_id = _parent_run(client, experiment_id, key, params)
    child = client.create_run(
        experiment_id,
        run_name=stage,
        tags={"mlflow.parentRunId": parent_id, KEY_TAG: key, "stage": stage, "stage_kind": "stage"},
    )
    run = StageRun(client, child.info.run_id, parent_id)
    logged = {k: v for k, v in params.items() if not isinstance(v, Mapping)}
    logged |= {g: params[g] for g in groups if g in params}
    run.log_params(logged)
    try:
        yield run
    except BaseException:
        client.set_terminated(run.run_id, status="FAILED")
        raise
    client.set_terminated(run.run_id)


def pipeline_metrics(
    keys: list[str], root: Path | None = None, stages: tuple[str, ...] = ()
) -> dict[str, dict[str, float]]:
    """The metrics on the parent run of each pipeline key (experiment name), plus those of its
    ``stages``' child runs (e.g. ``("sweep",)`` for every per-SNR number); keys never run are left out."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(root or repo_root()))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return {}
    found: dict[str, dict[str, float]] = {}
    for key in keys:
        parent = _find_parent(client, experiment.experiment_id, key)
        if parent is None:
            continue
        metrics = dict(parent.data.metrics)
        for stage in stages:
            children = client.search_runs(
                [experiment.experiment_id],
                filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.stage = '{stage}'",
                order_by=["attributes.start_time DESC"],
                max_results=1,
            )
            if children:
                metrics |= dict(children[0].data.metrics)
        found[key] = metrics
    return found


def stage_artifact(key: str, stage: str, artifact: str, dst: Path, root: Path | None = None) -> Path | None:
    """Download ``artifact`` of the newest ``stage`` child run of pipeline ``key`` into folder ``dst``.

    None when that pipeline or stage was never recorded (e.g. an experiment not run yet).
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(root or repo_root()))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    parent = _find_parent(client, experiment.experiment_id, key) if experiment else None
    if parent is None:
        return None
    children = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.stage = '{stage}' "
        "and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not children:
        return None
    dst.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(children[0].info.run_id, artifact, str(dst)))
