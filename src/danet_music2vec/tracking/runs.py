"""Parent and child runs: one parent per pipeline execution, one child per stage under it.

The parent is found again by its ``pipeline_key`` tag: the DVC experiment name under
``dvc exp run`` (``DVC_EXP_NAME``), otherwise the git revision plus a hash of params.yaml.
Every stage opens a child run under it (``parent_run_id`` works across processes, which
is how DVC runs stages), logs its params, metrics and artifacts, and may put headline
numbers on the parent so the MLflow UI compares experiments in one table, and figures and
the listening page on the parent so its compare page shows two experiments side by side.

A stage killed by SIGTERM (or Ctrl-C) leaves its child run FAILED; one killed without a
chance to clean up (SIGKILL) is marked FAILED by the next run of that stage.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from danet_music2vec.tracking.provenance import pipeline_key, trace_tags
from danet_music2vec.tracking.store import check_reachable, ensure_experiment, repo_root, tracking_uri

KEY_TAG = "pipeline_key"


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

    def log_progress(self, done: int, total: int) -> None:
        """A long stage's progress (``progress`` = share of its items done, ``items_done``; step = items done), so
        that the MLflow UI shows how far a running stage is."""
        self.log_metrics({"progress": done / total if total else 1.0, "items_done": done}, step=done)

    def log_parent_metrics(self, metrics: Mapping[str, float]) -> None:
        self._log_metrics(self.parent_id, metrics, None)

    def _log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in flatten(metrics).items() if _is_number(v)]
        self.client.log_batch(run_id, metrics=batch)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_parent_artifact(self, path: str | os.PathLike[str]) -> None:
        """Put ``path`` on the parent run under its file name: what a person compares by eye and ear.

        MLflow's compare page shows the files two runs have in common side by side, and only the files at the root
        of their artifacts (MLflow 3.17 skips folders), so the name is the same in every pipeline run and has no
        folder; a stage run again overwrites its own.
        """
        self.client.log_artifact(self.parent_id, str(path))

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
            # example, pins the batch size it saw, and cannot trace the DANet architecture's k-means.
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


def find_parent(client: Any, experiment_id: str, key: str) -> Any:
    """The parent run of pipeline ``key``, or None."""
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.{KEY_TAG} = '{key}' and tags.stage_kind = 'pipeline'", max_results=1
    )
    return found[0] if found else None


def _parent_run(client: Any, experiment_id: str, key: str, params: Mapping[str, Any]) -> str:
    from mlflow.entities import Param, RunTag

    tags = trace_tags()
    found = find_parent(client, experiment_id, key)
    if found is not None:
        changed = {k: v for k, v in tags.items() if found.data.tags.get(k) != v}
        if changed:  # e.g. the manifest hash, once the download stage has written it
            client.log_batch(found.info.run_id, tags=[RunTag(k, v) for k, v in changed.items()])
        return found.info.run_id
    run = client.create_run(experiment_id, run_name=key, tags={KEY_TAG: key, "stage_kind": "pipeline"} | tags)
    flat = {k: str(v) for k, v in flatten(params).items()}
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in flat.items()])
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _fail_stale_children(client: Any, experiment_id: str, parent_id: str, stage: str) -> None:
    """Mark FAILED the RUNNING child runs of ``stage`` left by a process killed without cleanup (SIGKILL)."""
    stale = client.search_runs(
        [experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and tags.stage = '{stage}' and attributes.status = 'RUNNING'",
    )
    for run in stale:
        client.set_terminated(run.info.run_id, status="FAILED")


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so ``finally`` and ``except`` blocks run (a plain SIGTERM skips them)."""
    try:
        previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def stage_run(stage: str, params: Mapping[str, Any], groups: tuple[str, ...] = ()) -> Iterator[StageRun]:
    """Open a child run named ``stage`` under this pipeline execution's parent run.

    Logs the params of ``groups`` (plus top-level scalars such as ``noises``) on the
    child. The run ends FINISHED, or FAILED if the stage raises.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    root = repo_root()
    uri = tracking_uri(root)
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    experiment_id = ensure_experiment(client, root, uri)
    key = pipeline_key(params)
    parent_id = _parent_run(client, experiment_id, key, params)
    _fail_stale_children(client, experiment_id, parent_id, stage)
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
        with _sigterm_raises():
            yield run
    except BaseException:
        client.set_terminated(run.run_id, status="FAILED")
        raise
    client.set_terminated(run.run_id)
