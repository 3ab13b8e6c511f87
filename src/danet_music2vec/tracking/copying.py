"""Copying this project's runs from one MLflow store to another (``dm2v copy-runs``)."""

from __future__ import annotations

from typing import Any

from danet_music2vec.errors import TrackingError
from danet_music2vec.tracking.store import EXPERIMENT, check_reachable, ensure_experiment, repo_root

COPIED_FROM_TAG = "copied_from_run_id"


def _all_runs(client: Any, experiment_id: str) -> list[Any]:
    """Every run of ``experiment_id``, page by page (a search returns 1000 at most)."""
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
    target_experiment = ensure_experiment(target, repo_root(), target_uri)
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
