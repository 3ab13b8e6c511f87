import pytest
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
