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
``MLFLOW_TRACKING_URI`` overrides the store (e.g. a tracking server on PostgreSQL
with artifacts on S3, which then also receives the artifacts: clients need no S3
credentials). A server that cannot be reached stops the stage before it computes
anything, with one line naming ``MLFLOW_TRACKING_URI``.

The parent run carries what it takes to get back to the code and data that made it
(``TRACE_TAGS``): git commit and dirty flag of the checkout that ran, the DVC
experiment name and baseline rev, and hashes of params.yaml and the data manifest.
A stage killed by SIGTERM (or Ctrl-C) leaves its child run FAILED; one killed
without a chance to clean up (SIGKILL) is marked FAILED by the next run of that stage.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from danet_music2vec.data.ingest import MANIFEST
from danet_music2vec.errors import TrackingError

EXPERIMENT = "danet-music2vec"
KEY_TAG = "pipeline_key"
DATA_MANIFEST = Path("data/raw") / MANIFEST
# Git-tracked files that the stages themselves write: a run changing them does not make its code dirty.
PIPELINE_WRITES = ("dvc.lock", "metrics", "plots")
# Tags on every parent run; README "MLflow" shows how to get from them to `dvc exp apply`.
TRACE_TAGS = (
    "git_commit", "git_dirty", "dvc_exp_name", "dvc_exp_baseline_rev", "params_sha256", "data_manifest_sha256",
)

logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)
# Against a server MLflow prints two "View run" lines per finished run, after one more request.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


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
    return f"{_git(['rev-parse', '--short', 'HEAD'], repo_root()) or 'norev'}-{digest}"


def _git(args: list[str], cwd: Path) -> str | None:
    """Output of a git command, or None outside a git checkout."""
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=cwd).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def trace_tags(checkout: Path | None = None) -> dict[str, str]:
    """``TRACE_TAGS`` of the code and data in ``checkout`` (the current directory: the copy that runs).

    In a queued or ``--temp`` experiment that copy is DVC's checkout of the baseline
    commit plus the experiment's changes, so ``git_dirty`` is ``true`` whenever
    ``-S`` changed params.yaml; the experiment name restores it exactly.
    """
    checkout = checkout or Path.cwd()
    excluded = [f":(exclude){path}" for path in PIPELINE_WRITES]
    status = _git(["status", "--porcelain", "--untracked-files=no", "--", ".", *excluded], checkout)
    tags = {
        "git_commit": _git(["rev-parse", "HEAD"], checkout),
        "git_dirty": None if status is None else str(bool(status)).lower(),
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME"),
        "dvc_exp_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV"),
        "params_sha256": _sha256(checkout / "params.yaml"),
        # Only after the download stage has written it; later stages fill the tag in.
        "data_manifest_sha256": _sha256(checkout / DATA_MANIFEST),
    }
    return {k: v for k, v in tags.items() if v is not None}


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
    from mlflow.entities import Param, RunTag

    tags = trace_tags()
    found = _find_parent(client, experiment_id, key)
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


def _experiment_id(client: Any, root: Path, uri: str) -> str:
    """The id of ``EXPERIMENT``, created on first use (by whichever of two concurrent stages gets there first)."""
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
    experiment_id = _experiment_id(client, root, uri)
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


def delete_pipeline_runs(keys: list[str], root: Path | None = None) -> int:
    """Mark every run of pipeline ``keys`` (parents and their stage runs) deleted; returns how many.

    A pipeline key names one parent run, which a rerun under that name reuses: its params
    are immutable and the metrics of stages the rerun restores from DVC's cache would stay
    those of the old run. A rerun with other params (e.g. an ablation row after the
    defaults changed) starts from a clean record instead. Deleted runs stay in the store's
    trash (``mlflow gc`` purges them).
    """
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(root or repo_root()))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return 0
    deleted = 0
    for key in keys:
        for run in client.search_runs([experiment.experiment_id], filter_string=f"tags.{KEY_TAG} = '{key}'"):
            client.delete_run(run.info.run_id)
            deleted += 1
    return deleted


COPIED_FROM_TAG = "copied_from_run_id"


def _all_runs(client: Any, experiment_id: str) -> list[Any]:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def copy_runs(source_uri: str, target_uri: str) -> tuple[int, int]:
    """Copy this project's runs from one store to another, e.g. a local mlflow.db to a team's server.

    Each run keeps its name, status, times, params, tags, full metric histories, artifacts
    and logged models (MLflow 3 stores those apart from the run's artifacts); parent links
    are re-pointed at the copies. Copies are tagged ``copied_from_run_id``, so running it
    again copies only new runs. Returns (copied, already there).
    """
    import tempfile

    import mlflow.artifacts
    from mlflow.entities import Param
    from mlflow.tracking import MlflowClient

    for uri in (source_uri, target_uri):
        check_reachable(uri)
    source, target = MlflowClient(source_uri), MlflowClient(target_uri)
    experiment = source.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        raise TrackingError(f"{source_uri}: has no experiment {EXPERIMENT!r} to copy")
    target_experiment = _experiment_id(target, repo_root(), target_uri)
    copies = {
        r.data.tags[COPIED_FROM_TAG]: r.info.run_id for r in _all_runs(target, target_experiment) if COPIED_FROM_TAG in r.data.tags
    }
    already = len(copies)
    # Parents first, so that every child's parent already has its copy.
    runs = sorted(_all_runs(source, experiment.experiment_id), key=lambda r: ("mlflow.parentRunId" in r.data.tags, r.info.start_time))
    for run in runs:
        old_id = run.info.run_id
        if old_id in copies:
            continue
        tags = dict(run.data.tags) | {COPIED_FROM_TAG: old_id}
        if "mlflow.parentRunId" in tags:
            tags["mlflow.parentRunId"] = copies[tags["mlflow.parentRunId"]]
        new_id = target.create_run(target_experiment, start_time=run.info.start_time, tags=tags, run_name=run.info.run_name).info.run_id
        params = [Param(k, v) for k, v in run.data.params.items()]
        metrics = [m for key in run.data.metrics for m in source.get_metric_history(old_id, key)]
        # MLflow's batch limits: 100 params, 1000 metrics per call.
        for i in range(0, len(params), 100):
            target.log_batch(new_id, params=params[i : i + 100])
        for i in range(0, len(metrics), 1000):
            target.log_batch(new_id, metrics=metrics[i : i + 1000])
        with tempfile.TemporaryDirectory() as tmp:
            if source.list_artifacts(old_id):
                target.log_artifacts(new_id, source.download_artifacts(old_id, "", f"{tmp}/run"))
            for model in source.search_logged_models([experiment.experiment_id], filter_string=f"source_run_id = '{old_id}'"):
                local = mlflow.artifacts.download_artifacts(model.artifact_location, dst_path=f"{tmp}/{model.model_id}", tracking_uri=source_uri)
                copy = target.create_logged_model(
                    target_experiment, model.name, new_id, dict(model.tags), dict(model.params), model.model_type
                )
                target.log_model_artifacts(copy.model_id, local)
                target.finalize_logged_model(copy.model_id, "READY")
        target.set_terminated(new_id, status=run.info.status, end_time=run.info.end_time)
        copies[old_id] = new_id
    return len(copies) - already, already
