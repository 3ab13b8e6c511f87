"""The team stack itself: a stage logs through a real `mlflow server` (PostgreSQL store, artifacts proxied to S3)."""

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from danet_music2vec import servers, tracking
from danet_music2vec.errors import TrackingError


def test_stage_logs_params_metrics_plot_and_model_through_the_server(on_team_stack, tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("DVC_EXP_NAME", "server-exp")
    monkeypatch.chdir(tmp_path)
    plot = tmp_path / "loss.csv"
    plot.write_text("epoch,loss\n1,0.5\n2,0.25\n")
    params = {"noises": 1, "separator": {"epochs": 2}}
    with tracking.stage_run("train_separator", params, groups=("separator",)) as run:
        run.log_metrics({"loss": 0.25}, step=2)
        run.log_parent_metrics({"separation.gnsdr": 3.5})
        run.log_artifact(plot, "plots")
        run.log_model(torch.nn.Linear(4, 2), name="separator", input_example=np.zeros((3, 4), np.float32))

    client = MlflowClient(on_team_stack.tracking_uri)
    experiment = client.get_experiment_by_name(tracking.EXPERIMENT)
    assert experiment.artifact_location.startswith("mlflow-artifacts:")  # proxied, not a client-side path
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.pipeline_key = 'server-exp'")
    parent = next(r for r in runs if r.data.tags["stage_kind"] == "pipeline")
    child = next(r for r in runs if r.data.tags["stage_kind"] == "stage")
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id and child.info.status == "FINISHED"
    assert child.data.params == {"noises": "1", "separator.epochs": "2"} and child.data.metrics["loss"] == 0.25
    assert parent.data.metrics["separation.gnsdr"] == 3.5 and parent.data.tags["dvc_exp_name"] == "server-exp"

    downloaded = client.download_artifacts(child.info.run_id, "plots/loss.csv", str(tmp_path / "back"))
    assert open(downloaded).read() == plot.read_text()
    (model,) = client.search_logged_models([experiment.experiment_id], filter_string=f"source_run_id = '{child.info.run_id}'")
    mlflow.set_tracking_uri(on_team_stack.tracking_uri)
    loaded = mlflow.pytorch.load_model(model.model_uri)
    assert tuple(loaded(torch.zeros(1, 4)).shape) == (1, 2)
    assert mlflow.models.get_model_info(model.model_uri).signature is not None

    # The bytes are in the S3 bucket, and nothing was written next to the client.
    s3 = on_team_stack.s3.client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=on_team_stack.bucket, Prefix="mlflow/")["Contents"]]
    assert any(k.endswith("plots/loss.csv") for k in keys) and any(k.endswith("MLmodel") for k in keys)
    assert not (tmp_path / "mlruns").exists()


def test_unreachable_server_is_one_line_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{servers.free_port()}")
    with pytest.raises(TrackingError, match=r"^MLFLOW_TRACKING_URI=http://127\.0\.0\.1:\d+: the MLflow tracking server does not answer"):
        with tracking.stage_run("split", {"noises": 1}):
            pytest.fail("the stage must not start")
