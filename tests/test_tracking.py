import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from danet_music2vec import tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("DVC_EXP_NAME", "exp-one")
    return tmp_path


def runs(root):
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name(tracking.EXPERIMENT)
    return client.search_runs([exp.experiment_id])


def test_stages_share_one_parent_per_pipeline_execution(store, monkeypatch):
    params = {"noises": 1, "mix": {"snr_db": 0}, "stft": {"n_fft": 256}}
    with tracking.stage_run("mix", params, groups=("mix",)) as run:
        run.log_metrics({"mixtures": {"test": 9}})
        run.log_parent_metrics({"separation.gnsdr": 4.5})
    with tracking.stage_run("features", params, groups=("stft",)) as run:
        run.log_metrics({"chunks": 10}, step=1)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-two")
    with tracking.stage_run("mix", params | {"noises": 2}, groups=("mix",)):
        pass

    all_runs = runs(store)
    parents = {r.info.run_id: r for r in all_runs if r.data.tags.get("stage_kind") == "pipeline"}
    children = [r for r in all_runs if r.data.tags.get("stage_kind") == "stage"]
    assert sorted(p.data.tags[tracking.KEY_TAG] for p in parents.values()) == ["exp-one", "exp-two"]
    assert len(children) == 3 and all(c.data.tags["mlflow.parentRunId"] in parents for c in children)
    mix_one = next(c for c in children if c.info.run_name == "mix" and c.data.tags[tracking.KEY_TAG] == "exp-one")
    assert mix_one.data.metrics["mixtures.test"] == 9
    assert mix_one.data.params == {"noises": "1", "mix.snr_db": "0"}
    parent_one = next(p for p in parents.values() if p.data.tags[tracking.KEY_TAG] == "exp-one")
    assert parent_one.data.metrics["separation.gnsdr"] == 4.5
    assert parent_one.data.params["noises"] == "1"
    assert (store / "mlflow.db").is_file()


def test_a_long_stage_logs_its_progress_per_item(store):
    from danet_music2vec.workers import map_items

    with tracking.stage_run("score", {"noises": 1}) as run:
        map_items(doubled, None, [1, 2, 3, 4], workers=1, desc="score", progress=False,
                  on_progress=run.log_progress)  # fmt: skip
    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    (child,) = [r for r in runs(store) if r.info.run_name == "score"]
    history = client.get_metric_history(child.info.run_id, "progress")
    assert [(m.step, m.value) for m in history] == [(0, 0.0), (1, 0.25), (2, 0.5), (3, 0.75), (4, 1.0)]
    assert child.data.metrics["items_done"] == 4


def doubled(context, item):
    return 2 * item


def test_parent_artifacts_have_the_same_paths_in_every_pipeline_run(store, monkeypatch):
    figure = store / "snr_curves.png"
    params = {"noises": 1}
    for name, content in (("exp-one", b"one"), ("exp-two", b"two")):
        monkeypatch.setenv("DVC_EXP_NAME", name)
        figure.write_bytes(content)
        with tracking.stage_run("sweep", params | {"noises": len(content)}) as run:
            run.log_parent_artifact(figure)
            figure.write_bytes(content + b" again")  # a stage run again overwrites its own
            run.log_parent_artifact(figure)

    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    for parent in (r for r in runs(store) if r.data.tags.get("stage_kind") == "pipeline"):
        # at the root, where MLflow's compare page looks for the files two runs have in common
        assert [(a.path, a.is_dir) for a in client.list_artifacts(parent.info.run_id)] == [("snr_curves.png", False)]
        got = client.download_artifacts(parent.info.run_id, "snr_curves.png", str(store / parent.info.run_id))
        assert Path(got).read_bytes() == parent.data.tags[tracking.KEY_TAG][4:].encode() + b" again"


def test_deleting_a_pipeline_key_leaves_a_clean_record_for_its_rerun(store, monkeypatch):
    with tracking.stage_run("score", {"noises": 1}) as run:
        run.log_parent_metrics({"separation.gnsdr": 4.5})
    monkeypatch.setenv("DVC_EXP_NAME", "exp-two")
    with tracking.stage_run("score", {"noises": 2}) as run:
        run.log_parent_metrics({"separation.gnsdr": 2.0})
    assert tracking.delete_pipeline_runs(["exp-one"], store) == 2  # the parent and its stage run
    assert set(tracking.pipeline_metrics(["exp-one", "exp-two"], store)) == {"exp-two"}
    monkeypatch.setenv("DVC_EXP_NAME", "exp-one")
    with tracking.stage_run("score", {"noises": 1, "new": True}):
        pass  # the rerun logs nothing for the score yet: the old 4.5 must not show through
    assert tracking.pipeline_metrics(["exp-one"], store)["exp-one"] == {}
    (parent,) = [r for r in runs(store) if r.data.tags.get(tracking.KEY_TAG) == "exp-one" and r.info.run_name == "exp-one"]
    assert parent.data.params["new"] == "True"


def test_failed_stage_is_marked_failed(store):
    with pytest.raises(RuntimeError):
        with tracking.stage_run("split", {"noises": 1}):
            raise RuntimeError("boom")
    (child,) = [r for r in runs(store) if r.info.run_name == "split"]
    assert child.info.status == "FAILED"


def test_tracking_uri_env_overrides_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri(tmp_path) == "http://127.0.0.1:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.tracking_uri(tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_pipeline_key_without_dvc_is_rev_plus_params_hash(monkeypatch):
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    a, b = tracking.pipeline_key({"noises": 1}), tracking.pipeline_key({"noises": 2})
    assert a != b and a.split("-")[0] == b.split("-")[0]


def test_parent_run_carries_the_trace_tags(store, monkeypatch):
    repo = store
    (repo / "params.yaml").write_text("noises: 1\n")
    (repo / "data" / "raw").mkdir(parents=True)
    (repo / "data" / "raw" / "manifest.parquet").write_bytes(b"clips")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for cmd in (["init", "-q"], ["add", "params.yaml"], ["commit", "-qm", "init"]):
        subprocess.run(git + cmd, cwd=repo, check=True)
    (repo / "metrics").mkdir()
    (repo / "metrics" / "split.json").write_text("{}")
    subprocess.run(git + ["add", "metrics"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-qm", "metrics"], cwd=repo, check=True)
    (repo / "metrics" / "split.json").write_text('{"clips": 3}')  # a stage's output: not dirty code
    monkeypatch.chdir(repo)
    assert tracking.trace_tags()["git_dirty"] == "false"
    (repo / "params.yaml").write_text("noises: 2\n")  # what `dvc exp run -S noises=2` does
    monkeypatch.chdir(repo)
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "abc123")
    with tracking.stage_run("mix", {"noises": 2}):
        pass
    (parent,) = [r for r in runs(store) if r.data.tags["stage_kind"] == "pipeline"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert {k: parent.data.tags[k] for k in tracking.TRACE_TAGS} == {
        "git_commit": head,
        "git_dirty": "true",
        "dvc_exp_name": "exp-one",
        "dvc_exp_baseline_rev": "abc123",
        "params_sha256": hashlib.sha256(b"noises: 2\n").hexdigest(),
        "data_manifest_sha256": hashlib.sha256(b"clips").hexdigest(),
    }


STAGE_THAT_HANGS = """
import time
from danet_music2vec import stage, tracking

def main():
    with tracking.stage_run("train_separator", {"noises": 1}):
        print("started", flush=True)
        time.sleep(120)

stage.run(main, "train_separator")
"""


def start_hanging_stage(store):
    env = os.environ | {"DVC_ROOT": str(store), "DVC_EXP_NAME": "exp-one"}
    env.pop("MLFLOW_TRACKING_URI", None)
    process = subprocess.Popen([sys.executable, "-c", STAGE_THAT_HANGS], env=env, cwd=store, stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "started\n"
    return process


def test_sigterm_marks_the_child_run_failed(store):
    process = start_hanging_stage(store)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 128 + signal.SIGTERM
    (child,) = [r for r in runs(store) if r.info.run_name == "train_separator"]
    assert child.info.status == "FAILED"


def test_a_sigkilled_stage_is_marked_failed_by_its_rerun(store):
    process = start_hanging_stage(store)
    process.kill()
    process.wait(60)
    (killed,) = [r for r in runs(store) if r.info.run_name == "train_separator"]
    assert killed.info.status == "RUNNING"  # nothing in the process could run
    with tracking.stage_run("train_separator", {"noises": 1}):
        pass
    statuses = {r.info.run_id: r.info.status for r in runs(store) if r.info.run_name == "train_separator"}
    assert statuses.pop(killed.info.run_id) == "FAILED" and list(statuses.values()) == ["FINISHED"]


def test_copy_runs_moves_a_local_store_to_the_server_once(store, on_team_stack, tmp_path, monkeypatch, capsys):
    from danet_music2vec.cli import main

    local = f"sqlite:///{store / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", local)
    monkeypatch.setenv("DVC_EXP_NAME", "before-the-server")
    (store / "curve.csv").write_text("snr,f1\n0,0.5\n")
    with tracking.stage_run("score", {"noises": 1}) as run:
        run.log_metrics({"loss": 1.0}, step=1)
        run.log_metrics({"loss": 0.5}, step=2)
        run.log_parent_metrics({"separation.gnsdr": 2.0})
        run.log_artifact(store / "curve.csv", "plots")
        run.log_model(torch.nn.Linear(2, 1), name="music2vec", input_example=np.zeros((1, 2), np.float32))

    assert main(["copy-runs", "--from", local, "--to", on_team_stack.tracking_uri]) == 0
    assert "copied 2 runs" in capsys.readouterr().out
    assert main(["copy-runs", "--from", local, "--to", on_team_stack.tracking_uri]) == 0
    assert "copied 0 runs" in capsys.readouterr().out

    server = MlflowClient(on_team_stack.tracking_uri)
    experiment = server.get_experiment_by_name(tracking.EXPERIMENT)
    copied = server.search_runs([experiment.experiment_id], filter_string="tags.pipeline_key = 'before-the-server'")
    parent = next(r for r in copied if r.data.tags["stage_kind"] == "pipeline")
    child = next(r for r in copied if r.data.tags["stage_kind"] == "stage")
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id and child.info.status == "FINISHED"
    assert [m.value for m in server.get_metric_history(child.info.run_id, "loss")] == [1.0, 0.5]
    assert parent.data.metrics["separation.gnsdr"] == 2.0 and parent.data.params["noises"] == "1"
    back = server.download_artifacts(child.info.run_id, "plots/curve.csv", str(tmp_path / "back"))
    assert open(back).read() == "snr,f1\n0,0.5\n"
    (model,) = server.search_logged_models([experiment.experiment_id], filter_string=f"source_run_id = '{child.info.run_id}'")
    mlflow.set_tracking_uri(on_team_stack.tracking_uri)
    assert tuple(mlflow.pytorch.load_model(model.model_uri)(torch.zeros(1, 2)).shape) == (1, 1)
