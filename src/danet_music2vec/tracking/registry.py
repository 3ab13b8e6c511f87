"""Promote the best packaged pipeline run to the MLflow Model Registry: ``dm2v promote``.

The rule (:data:`RULE`): among the FINISHED ``package`` runs of the project's experiment
that logged the served model (the stage runs only on a params.yaml that passed its
schema), the highest weighted F1 of the product (the path the served model answers with:
``classification.product.f1``, src/danet_music2vec/evidence.py) on the test split wins; a tie
goes to the higher GNSDR, then to the earlier run. The winner is registered under one
model name (once: promoting again reuses its version) and the alias ``champion`` points
at it, unless the version it points at already scores as well or better: the alias moves
only for a better run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from danet_music2vec.errors import TrackingError
from danet_music2vec.tracking.runs import KEY_TAG
from danet_music2vec.tracking.store import EXPERIMENT, check_reachable, tracking_uri

ALIAS = "champion"
F1, GNSDR = "classification.product.f1", "separation.gnsdr"
RULE = (
    f"highest {F1} (weighted F1 of the path the served model answers with, test split), ties broken by the higher {GNSDR}, "
    "then the earlier run; among FINISHED package runs that logged the served model"
)


@dataclass(frozen=True)
class Candidate:
    """A packaged pipeline run and the two numbers the rule compares."""

    run_id: str
    pipeline: str
    f1: float
    gnsdr: float
    start_time: int
    model_uri: str

    def key(self) -> tuple[float, float, int]:
        """Larger is better: F1, then GNSDR, then the earlier start."""
        return (self.f1, self.gnsdr, -self.start_time)

    def describe(self) -> str:
        return f"run {self.run_id} (pipeline {self.pipeline}): product F1 {self.f1:.4f}, GNSDR {self.gnsdr:.2f} dB"


@dataclass(frozen=True)
class Promotion:
    """What :func:`promote` did: the best run, the version ``champion`` points at now (and its run), whether
    the alias moved, and the run it pointed at before (None: no alias yet, or its run is gone)."""

    name: str
    winner: Candidate
    candidates: int
    version: str
    champion: Candidate
    moved: bool
    previous: Candidate | None

    def report(self) -> list[str]:
        """The lines ``dm2v promote`` prints: the rule, the winner and why, and what the alias did."""
        lines = [f"rule: {RULE}", f"best of {self.candidates} packaged run(s): {self.winner.describe()}"]
        target = f"models:/{self.name}@{ALIAS}"
        if self.moved:
            was = f" (was {self.previous.describe()})" if self.previous else " (new alias)"
            lines.append(f"{target} -> version {self.version}{was}")
        elif self.champion.run_id == self.winner.run_id:
            lines.append(f"{target} stays at version {self.version}: it is already the best run")
        else:
            lines.append(f"{target} stays at version {self.version}, {self.champion.describe()}: "
                         "no run scores better by the rule")  # fmt: skip
        return lines


def _candidate(run: Any) -> Candidate | None:
    from danet_music2vec.tracking.packaging import MODEL_URI_TAG

    metrics, tags = run.data.metrics, run.data.tags
    if F1 not in metrics or GNSDR not in metrics or MODEL_URI_TAG not in tags:
        return None
    return Candidate(run.info.run_id, tags.get(KEY_TAG, "?"), float(metrics[F1]), float(metrics[GNSDR]),
                     int(run.info.start_time), tags[MODEL_URI_TAG])  # fmt: skip


def candidates(client: Any) -> list[Candidate]:
    """Every packaged run the rule may choose from, best first."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id], filter_string="tags.stage = 'package' and attributes.status = 'FINISHED'", max_results=10000
    )
    found = [c for c in map(_candidate, runs) if c is not None]
    return sorted(found, key=Candidate.key, reverse=True)


def _version_of(client: Any, name: str, winner: Candidate) -> str:
    """The registered version of ``winner``'s model under ``name``, registering it the first time."""
    import mlflow

    for version in client.search_model_versions(f"name = '{name}' and run_id = '{winner.run_id}'"):
        return str(version.version)
    return str(mlflow.register_model(winner.model_uri, name, tags={"rule": RULE}).version)


def _champion(client: Any, name: str) -> tuple[str, Candidate | None] | None:
    """The version ``champion`` points at and its run as a candidate (None when it has no alias yet)."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        return None
    try:
        run = client.get_run(version.run_id) if version.run_id else None
    except MlflowException:  # its run was deleted and purged: any candidate is better
        run = None
    return str(version.version), (_candidate(run) if run is not None else None)


def promote(name: str, uri: str | None = None) -> Promotion:
    """Register the best packaged run under ``name`` by :data:`RULE` and point ``champion`` at it if it is better."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = uri or tracking_uri()
    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = candidates(client)
    if not found:
        raise TrackingError(
            f"{uri}: no finished `package` run with the served model and the scores {F1} and {GNSDR}; "
            "run the pipeline (`dvc repro`) first"
        )
    winner = found[0]
    current = _champion(client, name)
    previous = current[1] if current else None
    if current is not None and previous is not None and previous.key() >= winner.key():
        return Promotion(name, winner, len(found), current[0], previous, False, previous)
    version = _version_of(client, name, winner)
    client.set_registered_model_alias(name, ALIAS, version)
    return Promotion(name, winner, len(found), version, winner, True, previous)
