"""Reading recorded pipeline executions back by their pipeline keys, and deleting them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from danet_music2vec.tracking.runs import KEY_TAG, find_parent
from danet_music2vec.tracking.store import EXPERIMENT, tracking_uri


def _client_and_experiment(root: Path | None) -> tuple[Any, Any]:
    """A client of the store of the repo at ``root`` (default: this one) and its ``EXPERIMENT``, None before any run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(root))
    return client, client.get_experiment_by_name(EXPERIMENT)


def pipeline_metrics(
    keys: list[str], root: Path | None = None, stages: tuple[str, ...] = ()
) -> dict[str, dict[str, float]]:
    """The metrics on the parent run of each pipeline key (experiment name), plus those of its
    ``stages``' child runs (e.g. ``("sweep",)`` for every per-SNR number); keys never run are left out."""
    client, experiment = _client_and_experiment(root)
    if experiment is None:
        return {}
    found: dict[str, dict[str, float]] = {}
    for key in keys:
        parent = find_parent(client, experiment.experiment_id, key)
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
    client, experiment = _client_and_experiment(root)
    if experiment is None:
        return 0
    deleted = 0
    for key in keys:
        for run in client.search_runs([experiment.experiment_id], filter_string=f"tags.{KEY_TAG} = '{key}'"):
            client.delete_run(run.info.run_id)
            deleted += 1
    return deleted
