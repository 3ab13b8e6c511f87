"""Run one component of the compiled Kubeflow pipeline here, as KFP calls it: its executor's command and args with
the placeholders resolved by KFP's own local-execution code (``kfp.local``), artifacts as local folders.

``kfp.local`` itself runs container components only under Docker; this runs the resolved command as a
process instead, with the project copy ``workdir`` standing in for the image's working directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from kfp import dsl
from kfp.local.executor_input_utils import construct_executor_input
from kfp.local.placeholder_utils import replace_placeholders
from kfp.pipeline_spec import pipeline_spec_pb2

from danet_music2vec.kfp_pipeline import IMAGE_WORKDIR


def artifact(path: Path) -> dsl.Artifact:
    """A local folder or file as a KFP input artifact."""
    return dsl.Artifact(name=path.name, uri=str(path))


def run_component(
    spec: dict[str, Any], component: str, arguments: dict[str, Any], workdir: Path, task_root: Path, env: dict[str, str]
) -> dict[str, dsl.Artifact]:
    """Run ``component`` (a key of the compiled spec's ``components``, e.g. ``comp-score-shard``) with ``arguments``
    (artifacts, lists of artifacts, parameters; parameters not given take the pipeline's defaults) and return its
    output artifacts by name."""
    # A task's parameters are the pipeline's of the same name (the compiler wires them so): their defaults here.
    defaults = {name: value.get("defaultValue") for name, value in spec["root"]["inputDefinitions"]["parameters"].items()}
    declared = spec["components"][component]["inputDefinitions"].get("parameters", {})
    arguments = {name: defaults[name] for name in declared if name in defaults} | arguments
    component_spec = json_format.ParseDict(spec["components"][component], pipeline_spec_pb2.ComponentSpec())
    container = spec["deploymentSpec"]["executors"][spec["components"][component]["executorLabel"]]["container"]
    task_root.mkdir(parents=True)
    executor_input = construct_executor_input(component_spec, arguments, str(task_root), block_input_artifact=False)
    command = replace_placeholders(
        container["command"] + container["args"], json_format.MessageToDict(executor_input),
        pipeline_resource_name="local-run", task_resource_name=component, pipeline_root=str(task_root),
        unique_pipeline_id="1",
    )  # fmt: skip
    command = [str(workdir) if part == IMAGE_WORKDIR else part for part in command]
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # the image's `python` is this one
    done = subprocess.run(command, env=os.environ | env | {"PATH": path}, capture_output=True, text=True)
    assert done.returncode == 0, f"{component} failed:\n{done.stdout}\n{done.stderr}"
    outputs = executor_input.outputs.artifacts
    return {name: artifact(Path(outputs[name].artifacts[0].uri)) for name in outputs}
