"""The data half of the pipeline under real DVC, in a temporary copy of the repository."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from danet_music2vec.kfp_pipeline.compiler import compile_pipeline
from danet_music2vec.kfp_pipeline.dvc_stages import load_stages, path_name, stage_inputs
from danet_music2vec.shards import SHARDED, resume_folder, shard_specs
from tests.conftest import REPO, write_audio
from tests.kfp_local import artifact, run_component

DATA_STAGES = ["download", "split", "mix", "features"]
ALL_STAGES = DATA_STAGES + ["train_separator", "train_music2vec", "separate", "adapt_music2vec", "classify", "score", "sweep",
                            "listen", "package"]
# What every pipeline run puts at the root of its MLflow parent run, for the compare page (stages score, sweep, listen).
COMPARED = {"confusion_clean.png", "confusion_mixture.png", "confusion_separated.png", "confusion_product.png", "snr_curves.png",
            "gnsdr_by_noise.png", "listening.html", "listening_spectrograms.jpg"}
# Small models and few epochs: these tests check the plumbing, not the quality.
TINY = {
    "separator": {"start": "scratch", "hidden": 16, "layers": 1, "epochs": 2, "steps_per_epoch": 4, "val_examples": 8},
    "music2vec": {"channels": [8, 8, 16], "lstm_hidden": 8, "epochs": 2, "crops_per_clip": 2},
    "adapt_music2vec": {"epochs": 1, "mixtures_per_clip": 1, "val_mixtures_per_clip": 1, "crops_per_clip": 2},
    "score": {"bootstrap_n": 50},
    "sweep": {"snr_db": [-5, 0]},
}


def sh(cmd: list[str], cwd: Path, log: Path | None = None) -> str:
    """Run ``cmd`` and return its output; with ``log``, the output goes to that file instead of a pipe.

    ``dvc queue start`` forks a daemon that can keep the caller's stdout open, so reading
    a pipe to its end would wait for the whole queue (or for ever); a file does not.
    """
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    env.pop("DVC_ROOT", None)
    env.pop("DVC_EXP_NAME", None)
    if log is None:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        output = done.stdout + done.stderr
    else:
        with log.open("w") as out:
            done = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        output = log.read_text()
    assert done.returncode == 0, f"{cmd} failed:\n{output}"
    return output


def ran(output: str) -> set[str]:
    return {s for s in ALL_STAGES if f"Running stage '{s}'" in output}


def commit(repo: Path, message: str) -> None:
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], repo)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], repo)


@pytest.fixture
def repo(tmp_path, make_library):
    copy = tmp_path / "repo"
    copy.mkdir()
    for item in ("dvc.yaml", "params.yaml", "stages", "src", ".dvc/config", ".dvc/plots", "vendor", ".dvcignore"):
        src, dst = REPO / item, copy / item
        if src.is_dir():
            # symlinks=True: stages/danet_music2vec must stay a link to the copy's own src/.
            shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    music_dir, noise_dir = make_library(genres=("rock", "folk"), clips_per_genre=4, noises=8, music_seconds=6.0)
    shutil.move(str(music_dir), copy / "data" / "sample" / "music")
    shutil.move(str(noise_dir), copy / "data" / "sample" / "noise")
    # 7 s, not 6: otherwise the same tones as the sample's first clips, byte for byte, which `separate` would refuse.
    extra, extra_noise = make_library(genres=("unlabelled",), clips_per_genre=2, noises=3, music_seconds=7.0)
    shutil.move(str(extra / "unlabelled"), copy / "data" / "extra-music")
    # A separator-only noise pool: two recordings of its own, one from ESC-50 fold 5 (held out: the full profile tests there).
    pool = copy / "data" / "extra-noise"
    pool.mkdir(parents=True)
    rows = []
    rng = np.random.default_rng(9)  # not make_library's seed: its noises would repeat the sample's, byte for byte
    for i, wav in enumerate(sorted(extra_noise.glob("*.wav"))):
        name = f"{5 if i == 2 else 4}-{9000 + i}-A-{i}.wav"
        write_audio(pool / name, (0.1 * rng.standard_normal(2 * 44100)).astype(np.float32), 44100)
        rows.append(f"{name},{name[0]},{i},cat{i},False,{9000 + i},A")
    (pool / "meta.csv").write_text("filename,fold,target,category,esc10,src_file,take\n" + "\n".join(rows) + "\n")
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["data"]["separation_music_dirs"] = ["data/extra-music"]
    params["data"]["separation_noise_dirs"] = ["data/extra-noise"]
    params["mix"]["test_mixtures_per_clip"] = 2
    for group, values in TINY.items():
        params[group].update(values)
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (copy / ".gitignore").write_text("/mlflow.db\n/mlruns/\n/checkpoints/\n")
    sh(["git", "init", "-q"], copy)
    commit(copy, "init")
    return copy


def test_data_stages_cache_and_rerun_only_what_noises_touches(repo):
    first = sh(["dvc", "repro", "mix", "features"], repo)
    assert ran(first) == set(DATA_STAGES)
    mixtures = pd.read_parquet(repo / "data" / "mixtures.parquet")
    assert mixtures["noise_clips"].map(len).eq(1).all() and set(mixtures["split"]) == {"test"}
    index = pd.read_parquet(repo / "data" / "features" / "index.parquet")
    pools = index.loc[index["clip_id"].str.startswith("separation/"), "kind"]
    assert list(pools) == ["music", "music", "noise", "noise"]  # both pools, less the pool's fold-5 clip

    assert ran(sh(["dvc", "repro", "mix", "features"], repo)) == set()
    assert "up to date" in sh(["dvc", "status", "mix", "features"], repo).lower()

    commit(repo, "lock")
    exp = sh(["dvc", "exp", "run", "-S", "noises=2", "mix", "features"], repo)
    assert ran(exp) == {"mix"}  # the features are the sources, mixed in training: `noises` does not touch them
    assert pd.read_parquet(repo / "data" / "mixtures.parquet")["noise_clips"].map(len).eq(2).all()

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("danet-music2vec").experiment_id])
    stages = sorted(r.info.run_name for r in runs if r.data.tags.get("stage_kind") == "stage")
    assert stages == sorted(DATA_STAGES + ["mix"])
    parents = [r for r in runs if r.data.tags.get("stage_kind") == "pipeline"]
    assert len(parents) == 2  # the plain repro and the experiment

    # A queued experiment runs in a temporary copy under .dvc/tmp/exps and must still
    # log to this repository's store (DVC_ROOT), under its experiment name.
    sh(["dvc", "exp", "run", "--queue", "-S", "mix.seed=7", "-n", "queued-seed7", "mix"], repo)
    sh(["dvc", "queue", "start", "-j", "1"], repo, log=repo.parent / "queue-start.log")
    for _ in range(60):
        status = sh(["dvc", "queue", "status"], repo)
        if "queued-seed7" in status and not any(w in status for w in ("Running", "Queued")):
            break
        time.sleep(2)
    assert "Success" in status, status
    queued = client.search_runs(
        [client.get_experiment_by_name("danet-music2vec").experiment_id], filter_string="tags.pipeline_key = 'queued-seed7'"
    )
    assert {r.info.run_name for r in queued} == {"queued-seed7", "mix"}


def wait_for_queue(repo: Path, names: list[str], timeout_s: float = 300) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = sh(["dvc", "queue", "status"], repo)
        if all(n in status for n in names) and not any(w in status for w in ("Running", "Queued")):
            return status
        time.sleep(2)
    raise AssertionError(f"queue not done after {timeout_s} s:\n{status}")


def stage_metrics(client: MlflowClient, key: str, stage: str) -> dict[str, float]:
    experiment = client.get_experiment_by_name("danet-music2vec")
    (run,) = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.pipeline_key = '{key}' and tags.stage = '{stage}'"
    )
    assert run.info.status == "FINISHED", run.info
    return {k: v for k, v in run.data.metrics.items() if not k.endswith("seconds")}


def test_queued_experiments_run_their_own_commit_and_log_at_once_to_the_server(repo, on_team_stack):
    sh(["dvc", "repro", "split"], repo)
    commit(repo, "split")
    head = sh(["git", "rev-parse", "HEAD"], repo).strip()
    for seed in (7, 8):
        sh(["dvc", "exp", "run", "--queue", "-S", f"mix.seed={seed}", "-n", f"q{seed}", "mix"], repo)
    # Change src/ after queueing: the experiments must run the code of their commit, not this.
    mixing = repo / "src" / "danet_music2vec" / "data" / "mixing.py"
    committed = mixing.read_text()
    mixing.write_text(committed + '\nraise RuntimeError("the workspace code ran, not the experiment commit")\n')
    sh(["dvc", "queue", "start", "-j", "2"], repo, log=repo.parent / "queue-start.log")
    status = wait_for_queue(repo, ["q7", "q8"])
    assert status.count("Success") == 2, status + sh(["dvc", "queue", "logs", "q7"], repo)
    mixing.write_text(committed)
    # The same experiment from the committed code, forced to run rather than restored from the run cache.
    sh(["dvc", "exp", "run", "-f", "-s", "-S", "mix.seed=7", "-n", "direct7", "mix"], repo)

    client = MlflowClient(on_team_stack.tracking_uri)
    assert stage_metrics(client, "q7", "mix") == stage_metrics(client, "direct7", "mix")
    assert set(stage_metrics(client, "q8", "mix")) == set(stage_metrics(client, "direct7", "mix"))
    experiment = client.get_experiment_by_name("danet-music2vec")
    for name in ("q7", "q8"):
        (parent,) = client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.pipeline_key = '{name}' and tags.stage_kind = 'pipeline'"
        )
        tags = parent.data.tags
        assert tags["dvc_exp_name"] == name and tags["dvc_exp_baseline_rev"] == head == tags["git_commit"]
        assert tags["git_dirty"] == "true"  # params.yaml carries the experiment's -S
        assert len(tags["params_sha256"]) == 64 and len(tags["data_manifest_sha256"]) == 64
        assert parent.data.params["mix.seed"] == name[1:]


def test_dvc_push_then_a_fresh_clone_pulls_to_an_up_to_date_pipeline(on_team_stack, tmp_path):
    # A two-stage project with this repository's .dvc/config (its `team` remote): the pipeline's
    # own stages would only add minutes of audio work to the same push and pull.
    repo, origin, clone = tmp_path / "repo", tmp_path / "origin.git", tmp_path / "clone"
    (repo / ".dvc").mkdir(parents=True)
    shutil.copy2(REPO / ".dvc" / "config", repo / ".dvc" / "config")
    (repo / "clips").mkdir()
    for i in range(20):
        (repo / "clips" / f"{i}.bin").write_bytes(os.urandom(4096))
    (repo / "params.yaml").write_text("copies: 1\n")
    (repo / "dvc.yaml").write_text(
        "stages:\n"
        "  pack:\n    cmd: cat clips/*.bin > packed.bin\n    deps: [clips]\n    outs: [packed.bin]\n"
        "  count:\n    cmd: wc -c packed.bin > count.txt && echo ${copies} >> count.txt\n"
        "    deps: [packed.bin]\n    params: [copies]\n    outs: [count.txt]\n"
    )
    sh(["git", "init", "-q"], repo)
    sh(["git", "init", "-q", "--bare", str(origin)], tmp_path)
    sh(["git", "remote", "add", "origin", str(origin)], repo)
    sh(["dvc", "add", "clips"], repo)
    sh(["dvc", "repro"], repo)
    commit(repo, "pipeline")
    sh(["git", "push", "-q", "origin", "HEAD"], repo)
    endpoint = ["dvc", "remote", "modify", "--local", "team", "endpointurl", on_team_stack.s3.endpoint_url]
    sh(endpoint, repo)
    assert "23 files pushed" in sh(["dvc", "push", "-r", "team"], repo)
    sh(["dvc", "exp", "run", "-S", "copies=2", "-n", "two-copies"], repo)
    sh(["dvc", "exp", "push", "-r", "team", "origin", "two-copies"], repo)

    sh(["git", "clone", "-q", str(origin), str(clone)], tmp_path)
    sh(endpoint, clone)
    assert not (clone / "clips").exists() and not (clone / "packed.bin").exists()
    sh(["dvc", "pull", "-r", "team"], clone)
    for out in ("packed.bin", "clips/7.bin"):
        assert (clone / out).read_bytes() == (repo / out).read_bytes(), out
    assert (clone / "count.txt").read_text().endswith("\n1\n")
    assert "up to date" in sh(["dvc", "status"], clone).lower()
    assert "Running stage" not in sh(["dvc", "repro"], clone)

    sh(["dvc", "exp", "pull", "-r", "team", "origin", "two-copies"], clone)
    sh(["dvc", "exp", "apply", "two-copies"], clone)
    assert (clone / "count.txt").read_text().endswith("\n2\n")
    assert "up to date" in sh(["dvc", "status"], clone).lower()


def test_bad_param_stops_the_stage_with_a_clear_message(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["noises"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, "stages/download.py"], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert "params.yaml: noises=3: is not supported; use 1 or 2" in done.stderr
    assert "Traceback" not in done.stderr


def test_whole_pipeline_then_noises_2_reuses_music2vec_and_compares_in_mlflow(repo, request, tmp_path):
    # Both trainers data-parallel: each stage reruns itself under torchrun with 2 CPU processes.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["separator"]["nproc"] = params["music2vec"]["nproc"] = 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert ran(sh(["dvc", "repro"], repo)) == set(ALL_STAGES)
    commit(repo, "first experiment")
    exp = sh(["dvc", "exp", "run", "-S", "noises=2", "-n", "two-noises"], repo)
    # "cache music2vec": nothing train_music2vec depends on changes with `noises`; the adapted classifier follows
    # the separator, which does
    assert ran(exp) == {"mix", "train_separator", "separate", "adapt_music2vec", "classify", "score", "sweep", "listen", "package"}

    import json

    score = json.loads((repo / "metrics" / "score.json").read_text())
    for key in ("separation.gnsdr", "separation.oracle_irm.gnsdr", "separation.spectral_gate.gnsdr", "separation.full_band.gnsdr",
                "classification.clean.f1", "classification.mixture.f1", "classification.separated.f1",
                "classification.separated_adapted.f1", "classification.combined.f1", "classification.product.f1"):  # fmt: skip
        assert isinstance(score[key], float), key
    assert score["separation.oracle_irm.gnsdr"] > score["separation.spectral_gate.gnsdr"]

    client = MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("danet-music2vec").experiment_id])
    parents = {r.data.params["noises"]: r for r in runs if r.data.tags.get("stage_kind") == "pipeline"}
    assert set(parents) == {"1", "2"}
    assert parents["2"].data.tags["pipeline_key"] == "two-noises"
    for parent in parents.values():
        assert {"separation.gnsdr", "classification.separated.f1", "classification.mixture.f1", "classification.product.f1",
                "classification.separated_adapted.f1", "classification.combined.f1"} <= set(parent.data.metrics)
        assert {"snr_m5.separation.gnsdr", "snr_0.classification.separated.f1", "snr_0.classification.product.f1"} <= set(
            parent.data.metrics)

    # Each run packaged its served model; promote chooses between the two by its rule.
    from danet_music2vec.tracking.registry import promote

    promotion = promote("danet-music2vec", f"sqlite:///{repo / 'mlflow.db'}")
    assert promotion.moved and promotion.candidates == 2

    for stage in ("train_separator", "train_music2vec"):  # rank 0 alone records
        assert json.loads((repo / "metrics" / f"{stage}.json").read_text())["processes"] == 2
        assert sum(r.data.tags.get("stage") == stage for r in runs) == (2 if stage == "train_separator" else 1)

    shown = json.loads(sh(["dvc", "exp", "show", "--json"], repo))
    assert "two-noises" in json.dumps(shown)

    # Going back is free: params set back to a combination that ran restore its outputs from DVC's run cache.
    back = sh(["dvc", "exp", "run", "-S", "noises=1", "-n", "one-noise-again"], repo)
    assert "train_separator" not in ran(back) and "train_music2vec" not in ran(back)
    assert "up to date" in sh(["dvc", "status"], repo).lower()
    # A key of an architecture not in use is no dependency: editing it reruns nothing.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["separator"]["danet"]["embedding_dim"] += 1
    params["separate"]["danet"]["kmeans_scope"] = "chunk"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "up to date" in sh(["dvc", "status"], repo).lower()

    # Both experiments side by side in MLflow's compare page: the same figures at the root of both parent runs (as
    # its REST API lists them), each shown for both runs (the browser check skips, saying why, without Chromium).
    import urllib.request

    from danet_music2vec.servers import mlflow_ui
    from tests.browser import mlflow_compare

    listen = json.loads((repo / "metrics" / "listen.json").read_text())
    assert listen["mixtures"] >= 3 and listen["page_bytes"] == (repo / "reports" / "listening.html").stat().st_size
    ids = [parents[n].info.run_id for n in ("1", "2")]
    with mlflow_ui(tmp_path, f"sqlite:///{repo / 'mlflow.db'}") as url:
        for run_id in ids:
            with urllib.request.urlopen(f"{url}/api/2.0/mlflow/artifacts/list?run_id={run_id}") as answer:
                files = json.load(answer)["files"]
            assert {f["path"] for f in files if not f["is_dir"]} >= COMPARED, files
        experiment_id = parents["1"].info.experiment_id
        browser = request.getfixturevalue("browser")  # last: without Chromium, the rest above has been checked
        for artifact in ("snr_curves.png", "listening_spectrograms.jpg"):
            shown = mlflow_compare(browser, url, experiment_id, ids, artifact, tmp_path / f"mlflow_compare_{Path(artifact).stem}.png")
            assert len(set(shown)) == 2  # two runs, two figures
        assert browser.stray_requests() == [] and browser.failed_requests() == []


def test_the_shipped_separator_starts_the_pipeline_without_training(repo):
    import json

    import torch

    from danet_music2vec import checkpoints
    from danet_music2vec.pretrained import SHIPPED

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["separator"]["start"] = "shipped"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh(["dvc", "repro", "separate"], repo)
    assert {"features", "train_separator", "separate"} <= ran(out)
    assert json.loads((repo / "metrics" / "train_separator.json").read_text())["start"] == "shipped"
    assert json.loads((repo / "metrics" / "features.json").read_text())["pool_noise_held_out"] == 1  # the fold-5 clip
    shipped, used = checkpoints.load(SHIPPED, "separator"), checkpoints.load(repo / "models" / "separator.pt", "separator")
    for key, value in shipped["model_state"].items():
        assert torch.equal(used["model_state"][key], value)
    assert len(pd.read_parquet(repo / "data" / "separated" / "index.parquet")) > 0


def test_unreachable_tracking_server_stops_the_stage_before_it_touches_outputs(repo):
    from danet_music2vec.servers import free_port

    previous = repo / "data" / "raw" / "manifest.parquet"  # stands for the output of an earlier run
    previous.parent.mkdir(parents=True)
    previous.write_bytes(b"earlier output")
    uri = f"http://127.0.0.1:{free_port()}"
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "MLFLOW_TRACKING_URI": uri}
    done = subprocess.run([sys.executable, "stages/download.py"], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith(f"download: error: MLFLOW_TRACKING_URI={uri}: the MLflow tracking server does not answer")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert previous.read_bytes() == b"earlier output"


def _project_copy(repo: Path, dest: Path) -> Path:
    """What the image holds of the project (its code and params, no outputs): one fresh copy per task, as each pod."""
    for item in ("dvc.yaml", "params.yaml", "stages", "src"):
        if (repo / item).is_dir():
            shutil.copytree(repo / item, dest / item, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / item, dest / item)
    return dest


def test_kubeflow_shards_merge_into_what_dvc_repro_writes(repo, tmp_path):
    """The compiled pipeline's sharded stages, each run as KFP calls it (3 shards, then the stage over their folders),
    write the metrics, predictions, scores and separated audio that `dvc repro` writes unsharded."""
    sh(["dvc", "repro", "score", "sweep"], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    spec = yaml.safe_load(compile_pipeline(tmp_path / "pipeline.yaml", repo / "dvc.yaml", repo / "params.yaml").read_text())
    stages = {stage.name: stage for stage in load_stages(repo / "dvc.yaml", params)}
    inputs = stage_inputs(list(stages.values()))
    produced = {out: repo / out for stage in stages.values() for out in stage.outs}  # upstream tasks' outs: DVC's
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'kfp-mlflow.db'}"}
    tasks = tmp_path / "tasks"
    for name in SHARDED:
        deps = {path_name(out): artifact(produced[out]) for _, out in inputs[name]}
        shards = [
            run_component(spec, f"comp-{name}-shard", deps | {"shard": shard}, _project_copy(repo, tasks / f"{name}-{k}" / "app"),
                          tasks / f"{name}-{k}" / "root", env)[path_name(resume_folder(name))]
            for k, shard in enumerate(shard_specs(3))
        ]  # fmt: skip
        assert all(any(Path(s.uri).iterdir()) for s in shards), f"{name}: a shard handed over no mixtures"
        outs = run_component(spec, f"comp-{name}", deps | {"shards": shards}, _project_copy(repo, tasks / name / "app"),
                             tasks / name / "root", env)  # fmt: skip
        produced |= {out: Path(outs[path_name(out)].uri) for out in stages[name].outs}

    tracks = len(pd.read_parquet(repo / "data" / "separated" / "index.parquet"))
    for name in ("separate", "classify"):  # the merge took every mixture from the shards and computed none
        assert json.loads(produced[f"metrics/{name}.json"].read_text())["resumed_mixtures"] == tracks
    for name in ("score", "sweep"):
        merged, unsharded = (json.loads(p.read_text()) for p in (produced[f"metrics/{name}.json"], repo / "metrics" / f"{name}.json"))
        assert merged.pop("stage_seconds") and unsharded.pop("stage_seconds")
        assert merged == unsharded, name
    for table in ("data/predictions.parquet", "data/separation_scores.parquet"):
        assert pd.read_parquet(produced[table]).equals(pd.read_parquet(repo / table)), table
    merged_index = pd.read_parquet(produced["data/separated"] / "index.parquet")
    unsharded_index = pd.read_parquet(repo / "data" / "separated" / "index.parquet")
    assert merged_index.drop(columns="processing_s").equals(unsharded_index.drop(columns="processing_s"))
    for path in unsharded_index["music_path"]:
        relative = Path(path).relative_to("data/separated")
        assert (produced["data/separated"] / relative).read_bytes() == (repo / path).read_bytes(), path
