"""Genre evidence from a noisy recording, and the rule that turns it into the product's answer.

A noisy recording can be classified along several paths:

* ``mixture``: the clean-trained music2vec on the recording as it is;
* ``separated``: the clean-trained music2vec on the separator's music;
* ``separated_adapted``: the adapted music2vec (the ``adapt_music2vec`` stage: fine-tuned on what
  the separator leaves) on the separator's music;
* ``combined``: ``weight`` x mixture + (1 - ``weight``) x separated_adapted, class probabilities averaged;
* ``gated``: a per-clip choice: separated_adapted where the separator took out at least ``gate_db``
  of the recording's power (it found noise to remove), the mixture where it took out less.

:func:`choose_rule` picks the weight, the gate and the product's path on validation clips (the
``adapt_music2vec`` stage's held-out training tracks), never on test clips. :class:`GenreReader`
is what ``dm2v classify --denoise`` and the served model answer with.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score, log_loss

if TYPE_CHECKING:  # scoring stored predictions (the names below) needs no model code, and no torch
    from danet_music2vec.classification import Classifier
    from danet_music2vec.workers import Finished

from danet_music2vec.params import ProductPath

PATHS: tuple[str, ...] = get_args(ProductPath)
# What the classify and sweep stages score: the paths, the clean music through both classifiers (the ceiling, and what
# adaptation costs on clean music) and the product (the rule's path).
SCORED = ("clean", "mixture", "separated", "separated_adapted", "combined", "gated", "product", "clean_adapted")
# Power floor of the removed-noise estimate (silence in, silence out: nothing removed).
_POWER_FLOOR = 1e-12


def removed_db(mixture: np.ndarray, music: np.ndarray) -> float:
    """How much of the recording's power the separator took out: 10 log10(P_mixture / P_music), in dB (0 = nothing)."""
    p_mix = max(float(np.mean(np.square(mixture, dtype=np.float64))), _POWER_FLOOR)
    p_music = max(float(np.mean(np.square(music, dtype=np.float64))), _POWER_FLOOR)
    return 10.0 * np.log10(p_mix / p_music)


@dataclass(frozen=True)
class Evidence:
    """Class probabilities of one recording along the paths that need a classifier, and what the separator removed."""

    mixture: np.ndarray  # the clean-trained classifier on the recording
    separated: np.ndarray  # the clean-trained classifier on the separated music
    separated_adapted: np.ndarray  # the adapted classifier on the separated music
    removed_db: float


@dataclass(frozen=True)
class ProductRule:
    """The product's path and the settings of the two paths that combine evidence (chosen on validation)."""

    path: str = "separated"
    weight: float = 0.5  # combined = weight * mixture + (1 - weight) * separated_adapted
    gate_db: float = 3.0  # gated: separated_adapted where at least this much was removed, else the mixture

    def __post_init__(self) -> None:
        if self.path not in PATHS:
            raise ValueError(f"product path {self.path!r}; use one of {', '.join(PATHS)}")
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"combination weight {self.weight}: must be in [0, 1]")

    def paths(self, evidence: Evidence) -> dict[str, np.ndarray]:
        """Class probabilities along every path in :data:`PATHS`."""
        combined = self.weight * evidence.mixture + (1.0 - self.weight) * evidence.separated_adapted
        gated = evidence.separated_adapted if evidence.removed_db >= self.gate_db else evidence.mixture
        return {"mixture": evidence.mixture, "separated": evidence.separated,
                "separated_adapted": evidence.separated_adapted, "combined": combined, "gated": gated}  # fmt: skip

    def proba(self, evidence: Evidence) -> np.ndarray:
        """The product's class probabilities."""
        return self.paths(evidence)[self.path]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ProductRule":
        return cls(path=str(values["path"]), weight=float(values["weight"]), gate_db=float(values["gate_db"]))


def path_scores(probas: np.ndarray, labels: Sequence[int], n_classes: int) -> tuple[float, float]:
    """Weighted F1 and log loss of ``probas`` (n, classes) against class indices ``labels``."""
    predicted = np.argmax(probas, axis=1)
    f1 = float(f1_score(labels, predicted, average="weighted", labels=range(n_classes), zero_division=0))
    clipped = np.clip(probas, 1e-7, 1.0)
    return f1, float(log_loss(labels, clipped / clipped.sum(axis=1, keepdims=True), labels=range(n_classes)))


def choose_rule(
    evidence: Sequence[Evidence],
    labels: Sequence[int],
    n_classes: int,
    weights: Sequence[float],
    gates_db: Sequence[float],
    candidates: Sequence[str] = PATHS,
) -> tuple[ProductRule, dict[str, dict[str, float]]]:
    """The rule that scores best on validation ``evidence`` (true class indices ``labels``), and every path's scores.

    Best is the highest weighted F1, then the lowest log loss (F1 moves in steps on a few clips;
    the log loss separates ties). The combination weight and the gate are chosen first, each from
    its grid; then the product's path among ``candidates`` (some of :data:`PATHS`), the earlier path
    winning a full tie (the mixture before anything that needs the separator).
    """
    if not evidence or len(evidence) != len(labels):
        raise ValueError(f"{len(evidence)} validation clips with {len(labels)} labels: need as many of each, at least one")
    if not candidates or not set(candidates) <= set(PATHS):
        raise ValueError(f"candidate paths {list(candidates)}: choose among {', '.join(PATHS)}")

    def scored(rule: ProductRule, path: str) -> tuple[float, float]:
        return path_scores(np.stack([rule.paths(e)[path] for e in evidence]), labels, n_classes)

    def best(rules: Sequence[ProductRule], path: str) -> ProductRule:
        keyed = [(scored(r, path), -i, r) for i, r in enumerate(rules)]
        return max(keyed, key=lambda k: (k[0][0], -k[0][1], k[1]))[2]

    weight = best([ProductRule(weight=float(w)) for w in weights], "combined").weight
    gate = best([ProductRule(weight=weight, gate_db=float(g)) for g in gates_db], "gated").gate_db
    tuned = ProductRule(weight=weight, gate_db=gate)
    scores = {path: dict(zip(("f1", "log_loss"), scored(tuned, path))) for path in PATHS}
    product = max(candidates, key=lambda p: (scores[p]["f1"], -scores[p]["log_loss"], -PATHS.index(p)))
    return ProductRule(path=product, weight=weight, gate_db=gate), scores


class GenreReader:
    """The two classifiers and the rule: the :class:`Evidence` of a recording and its separated music, and the
    product's answer from it.

    What ``dm2v classify --denoise``, the served model and the ``classify`` and ``sweep`` stages use, so all
    give the label the pipeline measured as ``classification.product``. It runs no separator: the
    caller separates (the stages read the ``separate`` stage's output, the CLI and the service run theirs).
    """

    def __init__(self, clean: Classifier, adapted: Classifier, rule: ProductRule) -> None:
        if list(clean.classes) != list(adapted.classes):
            raise ValueError(f"the clean and the adapted classifier know different genres: {clean.classes} / {adapted.classes}")
        self.clean, self.adapted, self.rule = clean, adapted, rule
        self.classes = list(clean.classes)

    @classmethod
    def load(
        cls,
        clean_path: str | os.PathLike[str],
        adapted_path: str | os.PathLike[str],
        hop_seconds: float | None = None,
        device: Any = "cpu",
    ) -> "GenreReader":
        """models/music2vec.pt and models/music2vec_adapted.pt (which holds the rule the pipeline chose)."""
        from danet_music2vec.classification import Classifier

        clean = Classifier.from_checkpoint(clean_path, hop_seconds=hop_seconds, device=device)
        adapted = Classifier.from_checkpoint(adapted_path, hop_seconds=hop_seconds, device=device, kind="music2vec_adapted")
        return cls(clean, adapted, product_rule(adapted_path))

    def evidence(self, mixture: np.ndarray, music: np.ndarray, sample_rate: int) -> Evidence:
        """The evidence of a mono ``mixture`` whose separated ``music`` is given (both at ``sample_rate``)."""
        return Evidence(
            mixture=self.clean.predict_proba(mixture, sample_rate),
            separated=self.clean.predict_proba(music, sample_rate),
            separated_adapted=self.adapted.predict_proba(music, sample_rate),
            removed_db=removed_db(mixture, music),
        )

    def read(self, mixture: np.ndarray, music: np.ndarray, sample_rate: int) -> np.ndarray:
        """The product's class probabilities of a mono ``mixture`` and its separated ``music`` (at ``sample_rate``)."""
        return self.rule.proba(self.evidence(mixture, music, sample_rate))

    def clean_probas(self, clean: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """``clean`` and ``clean_adapted``: both classifiers on the clean music (the same at every input SNR)."""
        return {"clean": self.clean.predict_proba(clean, sample_rate), "clean_adapted": self.adapted.predict_proba(clean, sample_rate)}

    def scored(
        self, clean: np.ndarray | dict[str, np.ndarray], mixture: np.ndarray, music: np.ndarray, sample_rate: int
    ) -> dict[str, np.ndarray]:
        """Class probabilities of every name in :data:`SCORED` for one mixture with its ``clean`` music (or that music's
        :meth:`clean_probas`, already computed)."""
        paths = self.rule.paths(self.evidence(mixture, music, sample_rate))
        found = paths | {"product": paths[self.rule.path]}
        found |= clean if isinstance(clean, dict) else self.clean_probas(clean, sample_rate)
        return {name: found[name] for name in SCORED}

    def row(self, proba: np.ndarray) -> dict[str, object]:
        """``predicted_label`` and ``p_<genre>`` of a prediction table's row."""
        return {"predicted_label": self.classes[int(np.argmax(proba))]} | {f"p_{c}": float(p) for c, p in zip(self.classes, proba)}


def classify_mixtures(
    reader: GenreReader,
    mixtures: pd.DataFrame,
    separated: pd.DataFrame,
    root: str | os.PathLike[str] = ".",
    progress: bool = True,
    workers: int = 1,
    finished: Finished | None = None,
    settings: str = "",
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Classify every TEST mixture of ``mixtures`` along every name in :data:`SCORED`.

    ``mixtures`` is data/mixtures.parquet (rendered with ``render_mixture``) or the rows of one shard of it
    (:mod:`~danet_music2vec.shards`); ``separated`` is data/separated/index.parquet (``mixture_id``,
    ``music_path`` relative to ``root``). Returns one row per (mixture, input) with mixture_id, music_clip,
    input (a name of :data:`SCORED`), true_label, predicted_label and ``p_<class>`` per class, and the seconds
    of mixture audio and of classification (model time on one thread, not decoding), from which the stage
    reports the real-time factor. ``workers`` processes classify mixtures in parallel (each gets the
    classifiers once); ``finished`` keeps each classified mixture so that a killed stage resumes, keyed with
    ``settings`` (what identifies the classifiers, e.g. their files' hashes).
    """
    test = mixtures[mixtures["split"] == "test"].sort_values("mixture_id")
    if test.empty:
        raise ValueError("data/mixtures.parquet has no test mixtures; check split.* and mix.* and rerun `dvc repro mix`")
    separated_paths = dict(zip(separated["mixture_id"], separated["music_path"]))
    missing = sorted(set(test["mixture_id"]) - set(separated_paths))
    if missing:
        raise ValueError(
            f"data/separated/index.parquet lacks {len(missing)} test mixture(s) (e.g. {missing[0]}); "
            "it is older than data/mixtures.parquet: run `dvc repro separate`"
        )
    from danet_music2vec.workers import item_key, map_items

    items = [(mix, str(Path(root) / separated_paths[mix.mixture_id])) for _, mix in test.iterrows()]
    keys = None if finished is None else [item_key(settings, mix.to_dict(), [mix.music_path, *mix.noise_paths, music])
                                          for mix, music in items]  # fmt: skip
    results = map_items(_classify_mixture, reader, items, workers, "classify", progress, finished, keys, on_progress)
    rows = [row for mixture_rows, _, _ in results for row in mixture_rows]
    return pd.DataFrame(rows), {"audio": sum(r[1] for r in results), "classify": sum(r[2] for r in results)}


def classified_results(folder: str | os.PathLike[str]) -> Finished:
    """Where the classify stage keeps each classified mixture: its prediction rows and its audio and model seconds."""
    from danet_music2vec.workers import Finished

    # Rows as (column, value) pairs: JSON files are written key-sorted, and the table keeps its columns' order.
    return Finished(
        folder,
        lambda result: [[list(row.items()) for row in result[0]], *result[1:]],
        lambda data: ([dict(pairs) for pairs in data[0]], *data[1:]),
    )


def _classify_mixture(reader: GenreReader, item: tuple[pd.Series, str]) -> tuple[list[dict[str, object]], float, float]:
    """One test mixture along every path: its prediction rows, seconds of audio, seconds of model time."""
    from danet_music2vec.audio import load_audio
    from danet_music2vec.data.mixing import render_mixture

    mix, music_path = item
    rendered, rate = render_mixture(mix), int(mix.sample_rate)
    music = load_audio(music_path, rate)
    started = time.perf_counter()
    probas = reader.scored(rendered.music, rendered.mixture, music, rate)
    model_seconds = time.perf_counter() - started
    rows = [{"mixture_id": mix.mixture_id, "music_clip": mix.music_clip, "input": name, "true_label": mix.label}
            | reader.row(proba) for name, proba in probas.items()]  # fmt: skip
    return rows, len(rendered.mixture) / rate, model_seconds


def product_rule(adapted_path: str | os.PathLike[str]) -> ProductRule:
    """The rule stored in models/music2vec_adapted.pt by the ``adapt_music2vec`` stage."""
    from danet_music2vec import checkpoints

    return ProductRule.from_dict(checkpoints.load(adapted_path, "music2vec_adapted")["product_rule"])
