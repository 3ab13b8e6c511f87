"""What the experiments recorded, in today's names.

Two records: the metrics on each experiment's MLflow runs (read through
:mod:`danet_music2vec.tracking`, found by experiment name), and the commit DVC saved for
each experiment (``refs/exps/...``, read with git): its per-mixture scores, headline
metrics and params.yaml. Experiments recorded before issue 18's renames carry the old
names: params through :data:`danet_music2vec.params.RENAMED`, system names of
``plots/separation.csv`` and the metric keys built from them through :data:`RENAMED_SYSTEMS`.
Everything read here comes back in today's names, so a recipe compares with it directly.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from danet_music2vec.evaluation import noise_names, snr_key
from danet_music2vec.experiments.variants import ABLATION_SNRS
from danet_music2vec.params import RENAMED, RENAMED_ARCHITECTURES
from danet_music2vec.tracking import pipeline_metrics

# System names of plots/separation.csv (and of the metric keys `separation.<system>.*`) before issue 18.
RENAMED_SYSTEMS = {"danet": "separator", "baseline": "spectral_gate"}


def upgrade_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` (nested, as params.yaml) with the keys and architecture names of before issue 18 renamed.

    Keys move as :data:`~danet_music2vec.params.RENAMED` says; removed ones are dropped;
    ``danet.objective``'s value becomes an architecture name. The old DANet keys go to the
    group of the architecture the experiment ran: ``separator.chimera.*`` for chimera,
    ``separator.danet.*`` otherwise. Params already in today's names come back equal.
    """
    old_group = params.get("danet")
    old_architecture = old_group.get("objective") if isinstance(old_group, Mapping) else None
    upgraded: dict[str, Any] = {}

    def put(dotted: str, value: Any) -> None:
        *groups, key = dotted.split(".")
        node = upgraded
        for group in groups:
            node = node.setdefault(group, {})
        node[key] = value

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            dotted = prefix + key
            if dotted in RENAMED:
                new = RENAMED[dotted]
                if new is None:
                    continue
                if dotted == "danet.objective":
                    value = RENAMED_ARCHITECTURES.get(value, value)
                if old_architecture == "chimera" and new.startswith("separator.danet."):
                    new = "separator.chimera." + new.removeprefix("separator.danet.")
                put(new, value)
            elif isinstance(value, Mapping) and value:
                walk(value, dotted + ".")
            else:
                put(dotted, value)

    walk(params, "")
    return upgraded


def upgrade_metric_key(key: str) -> str:
    """A metric key with the system names of before issue 18 renamed (``snr_0.separation.baseline.gnsdr`` ->
    ``snr_0.separation.spectral_gate.gnsdr``)."""
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        if part == "separation" and parts[i + 1] in RENAMED_SYSTEMS:
            parts[i + 1] = RENAMED_SYSTEMS[parts[i + 1]]
    return ".".join(parts)


def recorded_metrics(names: list[str], repo: Path, stages: tuple[str, ...] = ()) -> dict[str, dict[str, float]]:
    """The MLflow metrics of the experiments ``names`` (their parent runs plus ``stages``' runs), in today's keys.

    Experiments never recorded are left out.
    """
    recorded = pipeline_metrics(names, repo, stages=stages)
    return {name: {upgrade_metric_key(k): v for k, v in metrics.items()} for name, metrics in recorded.items()}


def sweep_finished(metrics: Mapping[str, float]) -> bool:
    """Whether an ablation experiment's metrics hold its sweep stage's numbers (an interrupted one has a parent run
    without them)."""
    return f"{snr_key(ABLATION_SNRS[0])}.separation.gnsdr" in metrics


@dataclass(frozen=True)
class SavedExperiment:
    """One experiment DVC saved: its per-mixture scores, headline metrics, params and the code it ran."""

    table: pd.DataFrame  # plots/separation.csv
    score: dict[str, Any]  # metrics/score.json
    params: dict[str, Any]  # params.yaml
    commit: str  # the commit the experiment was run on (DVC's baseline rev, 7 hex digits)
    code: str  # hash of src/, stages/ and dvc.yaml as the experiment ran them


CODE_PATHS = ("src", "stages", "dvc.yaml")
GitRunner = Callable[..., subprocess.CompletedProcess]


def _git_runner(repo: Path, env: dict[str, str] | None = None) -> GitRunner:
    """``git(*args)`` in ``repo`` (bytes output captured; ``env``: e.g. a separate index file)."""
    return lambda *args: subprocess.run(["git", *args], cwd=repo, capture_output=True, env=env)


def _code_key(git: GitRunner, tree: str) -> str:
    """Short hash of the code paths in ``tree`` (a commit or tree id): equal for equal code."""
    objects = [git("rev-parse", "--verify", "-q", f"{tree}:{path}").stdout.strip() for path in CODE_PATHS]
    return hashlib.sha256(b" ".join(objects)).hexdigest()[:7]


def workspace_code(repo: Path) -> str:
    """:func:`_code_key` of the working tree, uncommitted changes included (as ``dvc exp run`` saves them)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git = _git_runner(repo, env)
        git("read-tree", "HEAD")
        git("add", "-A", "--", *[path for path in CODE_PATHS if (repo / path).exists()])
        return _code_key(git, git("write-tree").stdout.decode().strip())


def _upgrade_table(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(system=table["system"].replace(RENAMED_SYSTEMS))


def saved_experiments(names: list[str], repo: Path) -> dict[tuple[str, str], SavedExperiment]:
    """The saved experiments of ``names``, keyed by ``(code, name)``: the newest run of a name on each code version.

    Read from the commit DVC saved for the experiment (``refs/exps/...``), not from MLflow:
    an experiment whose stages were all restored from DVC's cache (e.g. the default with
    the committed seed) ran no stage, so it logged nothing, but its commit holds its outputs.
    """
    git = _git_runner(repo)
    listing = git("for-each-ref", "--sort=-committerdate", "--format=%(refname)", "refs/exps").stdout.decode().split()
    wanted = set(names)
    found: dict[tuple[str, str], SavedExperiment] = {}
    for ref in listing:
        name = ref.rsplit("/", 1)[-1]
        if name not in wanted:
            continue
        code = _code_key(git, ref)
        if (code, name) in found:
            continue  # a newer run of this name on this code is kept
        outputs = ("plots/separation.csv", "metrics/score.json", "params.yaml")
        table, score, params = (git("show", f"{ref}:{path}") for path in outputs)
        if table.returncode == 0 and score.returncode == 0:
            commit = "".join(ref.split("/")[2:4])[:7]  # refs/exps/<sha[:2]>/<sha[2:]>/<name>
            found[(code, name)] = SavedExperiment(
                _upgrade_table(pd.read_csv(io.BytesIO(table.stdout))),
                {upgrade_metric_key(k): v for k, v in json.loads(score.stdout).items()},
                upgrade_params(yaml.safe_load(params.stdout) or {}),
                commit,
                code,
            )
    return found


def workspace_mixtures(repo: Path) -> pd.DataFrame | None:
    """The workspace's test mixtures (index ``mixture_id``; ``music_clip``, ``noise``), or None before the mix stage ran.

    ``noise`` is written as the score stage writes it (noise clip names joined by ``+``),
    so an experiment's per-mixture table can be checked against it.
    """
    path = repo / "data" / "mixtures.parquet"
    if not path.exists():
        return None
    mixtures = pd.read_parquet(path, columns=["mixture_id", "split", "music_clip", "noise_clips"])
    mixtures = mixtures[mixtures["split"] == "test"].set_index("mixture_id")
    return pd.DataFrame({"music_clip": mixtures["music_clip"], "noise": mixtures["noise_clips"].map(noise_names)})


def clip_of_mixture(table: pd.DataFrame, mixtures: pd.DataFrame) -> pd.Series:
    """Each mixture's music clip (index ``mixture_id``), after checking that ``table`` scored these very mixtures.

    The mix stage assigns mixture ids clip by clip, whatever the noise count, so the music
    clip of an id holds for experiments with another ``noises`` too; where the noise count
    is the workspace's, the noises themselves must match (a changed ``mix.seed`` shows there).
    """
    scored = table.drop_duplicates("mixture_id").set_index("mixture_id")["noise"]
    workspace = mixtures["noise"].reindex(scored.index)  # NaN: an id the workspace does not have
    comparable = workspace.notna() & (scored.str.count(r"\+") == workspace.str.count(r"\+"))
    if workspace.isna().any() or (scored[comparable] != workspace[comparable]).any():
        raise ValueError(
            "the experiments scored other test mixtures than data/mixtures.parquet holds (mixture ids or noises "
            "differ); run `dvc checkout data/mixtures.parquet` (or `dvc repro mix`) with the experiments' mix params."
        )
    return mixtures.loc[scored.index, "music_clip"]
