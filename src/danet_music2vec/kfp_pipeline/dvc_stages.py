"""Read the stage graph and the params out of ``dvc.yaml`` and ``params.yaml``.

Plain PyYAML, not DVC's own loader: the compiler must not need a DVC repository
(``.dvc/``) around the files it reads, and the tests cross-check the edges derived
here against DVC's own graph (``Repo.index.graph``). ``${...}`` in a stage is
resolved against ``params.yaml`` as DVC does for its default params file: a value
that is exactly ``${key}`` takes the param's value, one embedded in text its
string form. ``foreach``/``matrix`` stages and ``vars:`` are refused by name
rather than read wrongly; this project's ``dvc.yaml`` uses none of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from danet_music2vec.params import lookup
from danet_music2vec.tracking import flatten

TEMPLATE = re.compile(r"\$\{\s*([^}]+?)\s*\}")
# A flattened key `a.b.c` becomes the KFP parameter `a__b__c`: KFP parameter names must be
# Python identifiers, and the double underscore keeps the mapping reversible.
KFP_SEPARATOR = "__"


class DvcYamlError(ValueError):
    """dvc.yaml uses something this compiler does not translate."""


@dataclass(frozen=True)
class Stage:
    """One DVC stage: its command, the paths it reads and writes, the params keys it declares."""

    name: str
    cmd: str
    deps: tuple[str, ...]
    outs: tuple[str, ...]  # outs, metrics and plots alike: DVC draws edges from all three
    params: tuple[str, ...]  # as declared: a group (`stft`) or a leaf (`music2vec.seed`)


def _lookup(params: Mapping[str, Any], dotted: str) -> Any:
    try:
        return lookup(params, dotted)
    except KeyError:
        raise DvcYamlError(f"dvc.yaml: ${{{dotted}}} is not a key of params.yaml") from None


def _resolve(value: Any, params: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        whole = TEMPLATE.fullmatch(value)
        if whole:
            return _lookup(params, whole.group(1))
        return TEMPLATE.sub(lambda m: str(_lookup(params, m.group(1))), value)
    if isinstance(value, list):
        return [_resolve(v, params) for v in value]
    if isinstance(value, dict):
        return {_resolve(k, params): _resolve(v, params) for k, v in value.items()}
    return value


def _paths(entries: list[Any] | None) -> tuple[str, ...]:
    """Paths of a deps/outs/metrics/plots list, whose items are `path` or `{path: {options}}`."""
    paths: list[str] = []
    for entry in entries or []:
        paths.extend([entry] if isinstance(entry, str) else list(entry))
    return tuple(str(PurePosixPath(p)) for p in paths)


def _param_keys(entries: list[Any] | None, name: str) -> tuple[str, ...]:
    keys: list[str] = []
    for entry in entries or []:
        if not isinstance(entry, str):
            raise DvcYamlError(f"dvc.yaml: stage {name}: params from another file ({entry!r}) are not translated")
        keys.append(entry)
    return tuple(keys)


def load_stages(dvc_yaml: str | Path, params: Mapping[str, Any]) -> list[Stage]:
    """The stages of ``dvc_yaml`` in file order, with ``${...}`` resolved against ``params``."""
    document = yaml.safe_load(Path(dvc_yaml).read_text()) or {}
    if "vars" in document:
        raise DvcYamlError(f"{dvc_yaml}: `vars:` is not translated; put the values in params.yaml")
    stages = []
    for name, raw in (document.get("stages") or {}).items():
        if "foreach" in raw or "matrix" in raw:
            raise DvcYamlError(f"{dvc_yaml}: stage {name}: foreach/matrix stages are not translated")
        if raw.get("wdir", ".") != ".":
            raise DvcYamlError(f"{dvc_yaml}: stage {name}: wdir is not translated")
        spec = _resolve(raw, params)
        cmd = spec["cmd"]
        if not isinstance(cmd, str):
            raise DvcYamlError(f"{dvc_yaml}: stage {name}: cmd must be one command, not a list")
        outs = _paths(spec.get("outs")) + _paths(spec.get("metrics")) + _paths(spec.get("plots"))
        stages.append(Stage(name, cmd, _paths(spec.get("deps")), outs, _param_keys(spec.get("params"), name)))
    return stages


def _overlaps(a: str, b: str) -> bool:
    """True when one path is the other or lies inside it (DVC's rule for a dep on an out)."""
    pa, pb = PurePosixPath(a), PurePosixPath(b)
    return pa == pb or pa in pb.parents or pb in pa.parents


def stage_inputs(stages: list[Stage]) -> dict[str, list[tuple[str, str]]]:
    """For each stage, the ``(producing stage, out path)`` pairs its deps read."""
    producers = {out: stage.name for stage in stages for out in stage.outs}
    return {
        stage.name: [
            (producers[out], out) for out in producers if any(_overlaps(dep, out) for dep in stage.deps)
        ]
        for stage in stages
    }


def topological_order(stages: list[Stage]) -> list[Stage]:
    """``stages`` with every producer before its consumers (file order among the free ones)."""
    inputs = stage_inputs(stages)
    done: set[str] = set()
    ordered: list[Stage] = []
    while len(ordered) < len(stages):
        ready = [s for s in stages if s.name not in done and all(p in done for p, _ in inputs[s.name])]
        if not ready:
            raise DvcYamlError("dvc.yaml: the stages form a cycle")
        ordered.append(ready[0])
        done.add(ready[0].name)
    return ordered


def param_leaves(params: Mapping[str, Any]) -> dict[str, Any]:
    """Every leaf of params.yaml by dotted key; lists are leaves (``sweep.snr_db``), and so are empty groups
    (``separator.mask: {}``, which a stage declares through ``separator.${separator.architecture}``)."""

    def empty_groups(node: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(value, Mapping):
                found |= {f"{prefix}{key}": {}} if not value else empty_groups(value, f"{prefix}{key}.")
        return found

    return flatten(params) | empty_groups(params, "")


def declared_leaves(stage: Stage, leaves: Mapping[str, Any]) -> list[str]:
    """The leaves a stage's ``params:`` entries cover (a group covers all of its leaves)."""
    for key in stage.params:
        if not any(leaf == key or leaf.startswith(f"{key}.") for leaf in leaves):
            raise DvcYamlError(f"dvc.yaml: stage {stage.name} declares param {key}, which params.yaml lacks")
    return [leaf for leaf in leaves if any(leaf == key or leaf.startswith(f"{key}.") for key in stage.params)]


def kfp_name(dotted: str) -> str:
    """The KFP pipeline-parameter name of a params.yaml key: ``separator.epochs`` -> ``separator__epochs``."""
    name = dotted.replace(".", KFP_SEPARATOR)
    if KFP_SEPARATOR in dotted or not name.isidentifier():
        raise DvcYamlError(f"params.yaml: key {dotted!r} has no KFP parameter name (need identifier parts, no '__')")
    return name


def path_name(path: str) -> str:
    """A KFP artifact name for a DVC out path: ``data/mixtures.parquet`` -> ``data_mixtures_parquet``."""
    name = re.sub(r"\W", "_", path)
    return name if name.isidentifier() else f"p_{name}"
