"""The compiled Kubeflow pipeline against dvc.yaml: same stages, same DAG (as DVC itself draws it), every param.

The expected graph comes from DVC's own index (``Repo.index.graph``), not from the
compiler's reading of dvc.yaml, so a compiler that drifts from DVC fails here.
"""

import json
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from dvc.repo import Repo
from google.protobuf import json_format
from kfp import components
from kfp.pipeline_spec import pipeline_spec_pb2

from danet_music2vec import cli
from danet_music2vec.kfp_pipeline.compiler import compile_pipeline
from danet_music2vec.kfp_pipeline.dvc_stages import DvcYamlError, load_stages
from danet_music2vec.kfp_pipeline.runner import main as run_component
from danet_music2vec.params import ParamError
from danet_music2vec.shards import SHARDED, resume_folder
from tests.conftest import REPO

RUNNER = ["python", "-m", "danet_music2vec.kfp_pipeline.runner"]


def leaves(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every leaf by dotted key; an empty group (``separator.mask: {}``) is a leaf a stage may declare."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out |= leaves(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def dvc_view(root: Path) -> tuple[dict[str, set[str]], dict[str, list[str]], dict[str, str]]:
    """DVC's own reading of ``root``: upstream stages, declared params keys and cmd of each stage."""
    index = Repo(str(root)).index
    upstream: dict[str, set[str]] = {stage.name: set() for stage in index.stages}
    for consumer, producer in index.graph.edges:
        upstream[consumer.name].add(producer.name)
    declared = {
        stage.name: [key for dep in stage.deps if hasattr(dep, "params") for key in dep.params]
        for stage in index.stages
    }
    return upstream, declared, {stage.name: stage.cmd for stage in index.stages}


def compiled(root: Path, out: Path, image: str = "registry.example/dm2v:test") -> dict[str, Any]:
    compile_pipeline(out, root / "dvc.yaml", root / "params.yaml", image)
    return yaml.safe_load(out.read_text())


# The root DAG's tasks that are not stages: the shard list and one ParallelFor per sharded stage.
FANOUT = re.compile(r"test shards|for-loop-\d+")


def tasks_by_stage(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Root DAG tasks keyed by their display name, which is the DVC stage name (the fan-out's tasks left out)."""
    return {task["taskInfo"]["name"]: task for task in spec["root"]["dag"]["tasks"].values()
            if not FANOUT.fullmatch(task["taskInfo"]["name"])}  # fmt: skip


def task_keys(spec: dict[str, Any]) -> dict[str, str]:
    return {key: task["taskInfo"]["name"] for key, task in spec["root"]["dag"]["tasks"].items()}


def assert_matches_dvc(root: Path, spec: dict[str, Any]) -> None:
    upstream, declared, cmds = dvc_view(root)
    tasks, names = tasks_by_stage(spec), task_keys(spec)
    assert sorted(tasks) == sorted(upstream), "one task per DVC stage, named after it"
    for stage, task in tasks.items():
        assert {names[key] for key in task.get("dependentTasks", []) if names[key] in tasks} == upstream[stage], stage
        component = spec["components"][task["componentRef"]["name"]]
        container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
        args = container["args"]
        assert container["command"] == RUNNER
        assert args[args.index("--cmd") + 1] == cmds[stage]
        inputs = set(component["inputDefinitions"].get("parameters", {}))
        for key in declared[stage]:  # a group key covers all of its leaves
            covered = {leaf.replace(".", "__") for leaf in leaves(yaml.safe_load((root / "params.yaml").read_text()))
                       if leaf == key or leaf.startswith(f"{key}.")}  # fmt: skip
            assert covered and covered <= inputs, (stage, key)


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return compiled(REPO, tmp_path_factory.mktemp("kfp") / "pipeline.yaml")


def test_one_component_per_stage_with_dvcs_edges_and_params(spec: dict[str, Any]) -> None:
    assert_matches_dvc(REPO, spec)


def test_the_compiled_file_is_a_valid_pipeline_spec_that_kfp_loads(spec: dict[str, Any], tmp_path: Path) -> None:
    parsed = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())  # unknown fields or wrong types raise
    assert parsed.pipeline_info.name == "danet-music2vec"
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(spec))
    loaded = components.load_component_from_file(str(tmp_path / "pipeline.yaml"))
    assert set(loaded.component_spec.inputs) == set(spec["root"]["inputDefinitions"]["parameters"])


def test_each_stage_runs_its_own_script_in_the_project_image(spec: dict[str, Any]) -> None:
    for stage, task in tasks_by_stage(spec).items():
        executor = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        container = spec["deploymentSpec"]["executors"][executor]["container"]
        assert container["image"] == "registry.example/dm2v:test"
        cmd = container["args"][container["args"].index("--cmd") + 1]
        assert cmd == f"python stages/{stage}.py" and (REPO / "stages" / f"{stage}.py").is_file()


def test_every_params_leaf_is_a_pipeline_parameter_with_its_value(spec: dict[str, Any]) -> None:
    params = leaves(yaml.safe_load((REPO / "params.yaml").read_text()))
    defined = spec["root"]["inputDefinitions"]["parameters"]
    assert set(defined) == {key.replace(".", "__") for key in params} | {"test_shards"}
    assert defined["noises"] == {"defaultValue": "1", "isOptional": True, "parameterType": "STRING"}
    for key, value in params.items():
        assert yaml.safe_load(defined[key.replace(".", "__")]["defaultValue"]) == value, key


def test_noises_reaches_mix_and_not_the_music2vec_training(spec: dict[str, Any]) -> None:
    # KFP caches a task on its inputs: with `noises` out of train_music2vec's inputs, noises=2 reuses that
    # model, as `dvc exp run -S noises=2` does.
    tasks = tasks_by_stage(spec)
    assert tasks["mix"]["inputs"]["parameters"]["noises"] == {"componentInputParameter": "noises"}
    assert "noises" not in tasks["train_music2vec"]["inputs"]["parameters"]
    assert tasks["train_separator"]["inputs"]["artifacts"]["data_features"]["taskOutputArtifact"] == {
        "outputArtifactKey": "data_features", "producerTask": "features"
    }  # fmt: skip


def test_the_test_set_stages_fan_out_over_test_shards_and_run_over_their_folders(spec: dict[str, Any]) -> None:
    root, names, stages = spec["root"]["dag"]["tasks"], task_keys(spec), tasks_by_stage(spec)
    assert spec["root"]["inputDefinitions"]["parameters"]["test_shards"]["defaultValue"] == 4
    shard_list = next(key for key, name in names.items() if name == "test shards")
    assert root[shard_list]["inputs"]["parameters"]["count"] == {"componentInputParameter": "test_shards"}
    for stage in SHARDED:
        task = stages[stage]
        source = task["inputs"]["artifacts"]["shards"]["taskOutputArtifact"]
        loop = root[source["producerTask"]]
        assert loop["parameterIterator"]["items"]["inputParameter"].endswith("test-shards-specs")
        assert shard_list in loop["dependentTasks"]
        (shard,) = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"].values()
        assert shard["taskInfo"]["name"] == f"{stage} shard"
        shard_component, component = (spec["components"][t["componentRef"]["name"]] for t in (shard, task))
        # A shard reads what its stage reads and hands over one folder: the stage's resume folder.
        assert shard_component["inputDefinitions"]["parameters"].keys() - {"shard"} == component["inputDefinitions"]["parameters"].keys()
        assert shard_component["inputDefinitions"]["artifacts"].keys() == component["inputDefinitions"]["artifacts"].keys() - {"shards"}
        assert list(shard_component["outputDefinitions"]["artifacts"]) == [resume_folder(stage).replace("/", "_")]
        assert component["inputDefinitions"]["artifacts"]["shards"]["isArtifactList"]
        shard_args, args = (spec["deploymentSpec"]["executors"][c["executorLabel"]]["container"]["args"]
                            for c in (shard_component, component))  # fmt: skip
        assert shard_args[shard_args.index("--shard") + 1] == "{{$.inputs.parameters['shard']}}"
        assert args[args.index("--shards") + 1: args.index("--shards") + 3] == [resume_folder(stage), "{{$}}"]
    unsharded = set(stages) - set(SHARDED)
    assert all("shards" not in stages[s].get("inputs", {}).get("artifacts", {}) for s in unsharded)


@pytest.fixture
def copy_root(tmp_path: Path) -> Path:
    """dvc.yaml and params.yaml in a fresh DVC repository (no git, no data)."""
    root = tmp_path / "repo"
    root.mkdir()
    Repo.init(str(root), no_scm=True)
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, root / name)
    return root


def test_a_new_stage_and_a_new_param_appear_in_the_pipeline(copy_root: Path, tmp_path: Path) -> None:
    dvc = yaml.safe_load((copy_root / "dvc.yaml").read_text())
    dvc["stages"]["report"] = {
        "cmd": "python stages/report.py",
        "deps": ["data/predictions.parquet", "metrics/score.json"],
        "params": ["score.bootstrap_n", "report"],
        "outs": ["data/report.md"],
    }
    (copy_root / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    params = yaml.safe_load((copy_root / "params.yaml").read_text()) | {"report": {"top": 3}}
    (copy_root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    spec = compiled(copy_root, tmp_path / "pipeline.yaml")
    assert_matches_dvc(copy_root, spec)
    report = tasks_by_stage(spec)["report"]
    assert {task_keys(spec)[k] for k in report["dependentTasks"]} == {"classify", "score"}
    assert {"report__top", "score__bootstrap_n"} <= set(report["inputs"]["parameters"])


def test_a_dvc_yaml_feature_it_cannot_translate_is_refused(copy_root: Path) -> None:
    dvc = yaml.safe_load((copy_root / "dvc.yaml").read_text())
    dvc["stages"]["per_snr"] = {"foreach": [0, 5], "do": {"cmd": "python stages/sweep.py"}}
    (copy_root / "dvc.yaml").write_text(yaml.safe_dump(dvc))
    with pytest.raises(DvcYamlError, match="per_snr"):
        load_stages(copy_root / "dvc.yaml", yaml.safe_load((copy_root / "params.yaml").read_text()))


def test_cli_compiles_and_reports_user_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pipeline.yaml"
    assert cli.main(["kfp", "compile", "-o", str(out), "--dvc-yaml", str(REPO / "dvc.yaml"),
                     "--params", str(REPO / "params.yaml"), "--env", "MLFLOW_TRACKING_URI=http://mlflow:5000"]) == 0  # fmt: skip
    assert "pipeline.yaml" in capsys.readouterr().out
    executors = yaml.safe_load(out.read_text())["deploymentSpec"]["executors"].values()
    assert all(e["container"]["env"] == [{"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"}] for e in executors)
    assert cli.main(["kfp", "compile", "-o", str(out), "--dvc-yaml", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml not found" in capsys.readouterr().err


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A project copy with one stage script that echoes a param and a dep into its out."""
    work = tmp_path / "app"
    (work / "stages").mkdir(parents=True)
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    (work / "stages" / "echo.py").write_text(
        "import os, yaml, pathlib\n"
        "p = yaml.safe_load(open('params.yaml'))\n"
        "raw = pathlib.Path('data/raw/clip.txt').read_text()\n"
        "pathlib.Path('data/out').mkdir(parents=True)\n"
        "pathlib.Path('data/out/result.txt').write_text(f\"{p['noises']} {p['mix']['snr_db']} {raw} {os.environ['DVC_EXP_NAME']}\")\n"
    )
    return work


def test_runner_places_deps_writes_params_runs_the_stage_and_exports_outs(workdir: Path, tmp_path: Path) -> None:
    raw = tmp_path / "artifacts" / "raw"
    raw.mkdir(parents=True)
    (raw / "clip.txt").write_text("music")
    (workdir / "data" / "out").mkdir(parents=True)
    (workdir / "data" / "out" / "stale.txt").write_text("from an earlier run")  # removed first, as dvc repro does
    exported = tmp_path / "artifacts" / "out"
    code = run_component([
        "--workdir", str(workdir), "--stage", "echo", "--cmd", f"{shlex.quote(sys.executable)} stages/echo.py",
        "--param", "noises", "2", "--param", "mix.snr_db", "[-5, 5]",
        "--dep", "data/raw", str(raw), "--out", "data/out", str(exported), "--run-name", "run-7",
    ])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in exported.iterdir()) == ["result.txt"]
    assert (exported / "result.txt").read_text() == "2 [-5, 5] music kfp-run-7"  # one MLflow parent per KFP run


def test_runner_merges_the_shards_folders_before_the_stage_and_passes_a_shard_on(workdir: Path, tmp_path: Path) -> None:
    (workdir / "stages" / "ls.py").write_text(
        "import pathlib, sys\n"
        "files = sorted(str(p.relative_to('checkpoints/score')) for p in pathlib.Path('checkpoints/score').rglob('*.json'))\n"
        "pathlib.Path('out.txt').write_text(' '.join(files + sys.argv[1:]))\n"
        "pathlib.Path('checkpoints/score').mkdir(parents=True, exist_ok=True)\n"
    )
    shards = []
    for k in range(2):
        folder = tmp_path / "artifacts" / f"shard{k}"
        (folder / f"m{k}").mkdir(parents=True)
        (folder / f"m{k}.json").write_text("{}")
        (folder / f"m{k}" / "music.json").write_text("{}")
        shards.append({"name": f"shard{k}", "uri": str(folder), "metadata": {}})
    rendered = json.dumps({"inputs": {"artifacts": {"shards": {"artifacts": shards}}}})  # what KFP puts for {{$}}
    out = tmp_path / "artifacts" / "out.txt"
    cmd = f"{shlex.quote(sys.executable)} stages/ls.py"
    assert run_component(["--workdir", str(workdir), "--stage", "score", "--cmd", cmd, "--out", "out.txt", str(out),
                          "--shards", "checkpoints/score", rendered]) == 0  # fmt: skip
    assert out.read_text() == "m0.json m0/music.json m1.json m1/music.json"
    # A shard's out is the resume folder, emptied first as every out is: its stage starts from no mixtures.
    assert run_component(["--workdir", str(workdir), "--stage", "score", "--cmd", cmd,
                          "--out", "checkpoints/score", str(tmp_path / "artifacts" / "shard"), "--shard", "1/2"]) == 0  # fmt: skip
    assert (workdir / "out.txt").read_text() == "--shard 1/2"


def test_runner_refuses_an_invalid_param_before_running(workdir: Path) -> None:
    with pytest.raises(ParamError, match="noises=3"):
        run_component(["--workdir", str(workdir), "--stage", "echo", "--cmd", "false", "--param", "noises", "3"])


def test_runner_passes_on_the_stage_failure(workdir: Path) -> None:
    assert run_component(["--workdir", str(workdir), "--stage", "echo", "--cmd", "false"]) == 1
