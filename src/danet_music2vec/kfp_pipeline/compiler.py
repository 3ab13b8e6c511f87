"""Build and compile the Kubeflow pipeline of ``dvc.yaml``'s stages (kfp v2 SDK).

Each stage becomes a container component named after it (KFP turns ``train_separator``
into the task ``train-separator``; the task's display name stays ``train_separator``). Its
inputs are the pipeline parameters of the params its stage declares, plus the few
leaves no stage declares (``music2vec.device``): every stage still sees them,
and KFP's cache, like DVC's, re-runs a step only when something it declares
changes, so ``noises=2`` re-runs ``mix`` onwards and not ``train_music2vec``.
Every DVC out (outs, metrics, plots) is an output artifact; a dep on another
stage's out is the matching input artifact, and those artifact hand-offs are the
task edges, so the pipeline's DAG is DVC's.

The stages that work on test mixtures one by one (:data:`~danet_music2vec.shards.SHARDED`) fan out:
a ``ParallelFor`` over the ``test_shards`` pipeline parameter's shards runs ``<stage> shard`` tasks
(the stage with ``--shard K/N``), each handing over its finished mixtures (the stage's resume
folder) as an artifact; the stage's own task then runs as DVC runs it with the union of those
folders in place, takes every mixture from them and writes the same outs (:mod:`danet_music2vec.shards`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from kfp import compiler, dsl

from danet_music2vec.kfp_pipeline import DEFAULT_IMAGE, IMAGE_WORKDIR
from danet_music2vec.kfp_pipeline.dvc_stages import (
    DvcYamlError,
    Stage,
    declared_leaves,
    kfp_name,
    load_stages,
    param_leaves,
    path_name,
    stage_inputs,
    topological_order,
)
from danet_music2vec.params import read_params_yaml, yaml_text
from danet_music2vec.shards import SHARDED, resume_folder

PIPELINE_NAME = "danet-music2vec"
SHARDS_PARAMETER = "test_shards"  # how many tasks each sharded stage fans out to (a pipeline parameter)
DEFAULT_SHARDS = 4
RUNNER = ["python", "-m", "danet_music2vec.kfp_pipeline.runner"]
Role = Literal["stage", "shard", "merge"]  # a stage as DVC runs it; one shard of it; the stage over its shards


def _stage_params(stages: list[Stage], leaves: Mapping[str, Any]) -> dict[str, list[str]]:
    declared = {stage.name: declared_leaves(stage, leaves) for stage in stages}
    undeclared = [leaf for leaf in leaves if not any(leaf in keys for keys in declared.values())]
    return {name: keys + undeclared for name, keys in declared.items()}


def _component(stage: Stage, params: list[str], deps: list[str], image: str, role: Role = "stage") -> Callable[..., Any]:
    """A container component running ``stage`` through the runner, with a signature built from its DVC spec.

    ``shard``: the stage with ``--shard`` (input ``shard``), whose one output is its resume folder; ``merge``: the
    stage with the shards' folders (input ``shards``, a list of artifacts) placed in its resume folder first.
    """
    inputs = [(kfp_name(key), str) for key in params] + [(path_name(p), dsl.Input[dsl.Artifact]) for p in deps]
    outs = [resume_folder(stage.name)] if role == "shard" else list(stage.outs)
    inputs += {"stage": [], "shard": [("shard", str)], "merge": [("shards", dsl.Input[list[dsl.Artifact]])]}[role]
    outputs = [(path_name(p), dsl.Output[dsl.Artifact]) for p in outs]
    names = [name for name, _ in inputs + outputs]
    if len(set(names)) != len(names):
        raise DvcYamlError(f"dvc.yaml: stage {stage.name}: two params or paths map to the same KFP name: {names}")

    def container(*placeholders: Any) -> dsl.ContainerSpec:
        value = dict(zip(names, placeholders))
        args = ["--workdir", IMAGE_WORKDIR, "--stage", stage.name, "--cmd", stage.cmd]
        args += ["--run-name", dsl.PIPELINE_JOB_NAME_PLACEHOLDER]
        for key in params:
            args += ["--param", key, value[kfp_name(key)]]
        for path in deps:
            args += ["--dep", path, value[path_name(path)].path]
        for path in outs:
            args += ["--out", path, value[path_name(path)].path]
        if role == "shard":
            args += ["--shard", value["shard"]]
        if role == "merge":  # the task's executor input lists the shards' artifacts, as a Python component reads them
            args += ["--shards", resume_folder(stage.name), dsl.PIPELINE_TASK_EXECUTOR_INPUT_PLACEHOLDER]
        return dsl.ContainerSpec(image=image, command=RUNNER, args=args)

    name = stage.name if role != "shard" else f"{stage.name}_shard"
    container.__name__ = name
    container.__doc__ = f"DVC stage {stage.name}{' (one shard)' if role == 'shard' else ''}: {stage.cmd}"
    container.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=kind) for name, kind in inputs + outputs]
    )
    return dsl.container_component(container)


def _shard_list(image: str) -> Callable[..., Any]:
    """The component that turns ``test_shards`` into the ParallelFor's items (``["0/4", ..., "3/4"]``)."""

    def test_shards(count: Any, specs: Any) -> dsl.ContainerSpec:
        return dsl.ContainerSpec(image=image, command=[*RUNNER[:2], "danet_music2vec.kfp_pipeline.fanout"], args=[count, specs])

    # Built, not annotated: this module's annotations are strings (``from __future__ import annotations``), which KFP
    # does not read as types.
    test_shards.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("count", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=int),
         inspect.Parameter("specs", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=dsl.OutputPath(list))]
    )  # fmt: skip
    return dsl.container_component(test_shards)


def build_pipeline(
    dvc_yaml: str | Path, params_yaml: str | Path, image: str = DEFAULT_IMAGE, env: Mapping[str, str] | None = None
) -> Callable[..., Any]:
    """The KFP pipeline of ``dvc_yaml``: one component per stage, every params.yaml leaf a string parameter.

    ``env`` is set in every step, e.g. ``MLFLOW_TRACKING_URI``: without it each step logs to
    an sqlite file inside its own pod, which is gone when the step ends.
    """
    params = read_params_yaml(params_yaml)
    leaves = param_leaves(params)
    if kfp_name(SHARDS_PARAMETER) in {kfp_name(leaf) for leaf in leaves}:
        raise DvcYamlError(f"params.yaml: {SHARDS_PARAMETER} is the pipeline's own parameter; rename that key")
    stages = topological_order(load_stages(dvc_yaml, params))
    inputs = stage_inputs(stages)
    stage_params = _stage_params(stages, leaves)
    deps = {stage.name: [out for _, out in inputs[stage.name]] for stage in stages}
    components = {stage.name: _component(stage, stage_params[stage.name], deps[stage.name], image,
                                         "merge" if stage.name in SHARDED else "stage") for stage in stages}  # fmt: skip
    shard_components = {stage.name: _component(stage, stage_params[stage.name], deps[stage.name], image, "shard")
                        for stage in stages if stage.name in SHARDED}  # fmt: skip
    shard_list = _shard_list(image)

    def with_env(task: Any, display_name: str) -> Any:
        task.set_display_name(display_name)
        for name, text in (env or {}).items():
            task.set_env_variable(name, text)
        return task

    def pipeline(*values: Any) -> None:
        value = dict(zip([kfp_name(leaf) for leaf in leaves] + [SHARDS_PARAMETER], values))
        specs = with_env(shard_list(count=value[SHARDS_PARAMETER]), "test shards").outputs["specs"]
        produced: dict[str, Any] = {}  # DVC out path -> the task output that carries it
        for stage in stages:
            arguments = {kfp_name(key): value[kfp_name(key)] for key in stage_params[stage.name]}
            arguments |= {path_name(out): produced[out] for _, out in inputs[stage.name]}
            if stage.name in SHARDED:
                with dsl.ParallelFor(specs) as spec:
                    shard = with_env(shard_components[stage.name](shard=spec, **arguments), f"{stage.name} shard")
                arguments["shards"] = dsl.Collected(shard.outputs[path_name(resume_folder(stage.name))])
            task = with_env(components[stage.name](**arguments), stage.name)
            produced |= {out: task.outputs[path_name(out)] for out in stage.outs}

    pipeline.__name__ = PIPELINE_NAME.replace("-", "_")
    pipeline.__doc__ = "DANet noise removal and music2vec genre classification: the stages of dvc.yaml."
    pipeline.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(kfp_name(leaf), inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str, default=yaml_text(v))
            for leaf, v in leaves.items()
        ]
        + [inspect.Parameter(SHARDS_PARAMETER, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=int, default=DEFAULT_SHARDS)]
    )
    return dsl.pipeline(name=PIPELINE_NAME)(pipeline)


def compile_pipeline(
    output: str | Path,
    dvc_yaml: str | Path = "dvc.yaml",
    params_yaml: str | Path = "params.yaml",
    image: str = DEFAULT_IMAGE,
    env: Mapping[str, str] | None = None,
) -> Path:
    """Write the compiled pipeline (KFP IR YAML) to ``output`` and return its path."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(dvc_yaml, params_yaml, image, env), str(output))
    return output
