"""Log the pipeline's product: one audio-in pyfunc model per pipeline run (the ``package`` stage).

The model bundles models/separator.pt (the network plus the inference settings it was
scored with), models/music2vec.pt, models/music2vec_adapted.pt (with the product's rule) and the
request limits (``serve``) as artifacts, runs
:mod:`.audio_model` (MLflow's "models from code"), and carries a signature and an input
example (one second of audio). The run's scores go on the package run as metrics, so
:mod:`.registry` can choose the champion among runs.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path

import numpy as np

from danet_music2vec.service import Limits, Service, encode_audio
from danet_music2vec.tracking.runs import StageRun

MODEL_NAME = "model"  # the logged model's name on the package run
MODEL_URI_TAG = "served_model_uri"  # tag on the package run: the logged model's URI (what promote registers)
# Installed in the serving environment with `--env-manager virtualenv/conda`; `local` uses the project's venv.
REQUIREMENTS = ("torch", "torchaudio", "numpy", "pandas", "soundfile", "pydantic", "mlflow")


def example_rows(sample_rate: int = 22050, seconds: float = 1.0) -> list[dict[str, str]]:
    """A request of one row: a one-second chord as base64 FLAC (the input example and the signature's source)."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    chord = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)).astype(np.float32)
    return [{"audio": base64.b64encode(encode_audio(chord, sample_rate, "flac")).decode("ascii"), "format": "flac"}]


def _signature(service: Service):  # type: ignore[no-untyped-def]
    """Inputs: every request field, each optional (the service says which are needed); outputs: an answer's columns."""
    import pandas as pd
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types import DataType
    from mlflow.types.schema import Array, ColSpec, Schema

    inputs = Schema([
        ColSpec(DataType.string, "audio", required=False),
        ColSpec(Array(DataType.double), "samples", required=False),
        # double, not long: a column some rows leave empty arrives as NaN, which a long column rejects
        ColSpec(DataType.double, "sample_rate", required=False),
        ColSpec(DataType.double, "channels", required=False),
        ColSpec(DataType.string, "format", required=False),
    ])  # fmt: skip
    outputs = infer_signature(pd.DataFrame([service.answer(row) for row in example_rows()])).inputs
    return ModelSignature(inputs=inputs, outputs=outputs)


def _resolved(path: str | os.PathLike[str]) -> str:
    return str(Path(path).resolve())


def log_audio_model(
    run: StageRun,
    separator: str | os.PathLike[str],
    classifier: str | os.PathLike[str],
    adapted: str | os.PathLike[str],
    limits: Limits,
    metrics: Mapping[str, float],
) -> str:
    """Log the audio-in model on ``run`` with ``metrics`` (the run's scores); returns its model URI."""
    import mlflow
    import pandas as pd

    service = Service.load(separator, classifier, adapted, limits)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Path(tmp) / "service.json"
        settings.write_text(json.dumps({"limits": limits.as_dict()}, indent=2))
        with mlflow.start_run(run_id=run.run_id):
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=str(Path(__file__).with_name("audio_model.py")),
                # Resolved: with DVC's symlink cache type the model files are links into .dvc/cache, which
                # MLflow refuses ("resolved path is outside the artifact directory").
                artifacts={"separator": _resolved(separator), "classifier": _resolved(classifier),
                           "adapted_classifier": _resolved(adapted), "settings": str(settings)},
                signature=_signature(service),
                input_example=pd.DataFrame(example_rows()),
                # Explicit: MLflow would otherwise infer them in a subprocess that loads the model again.
                pip_requirements=[f"{name}=={metadata.version(name).split('+')[0]}" for name in REQUIREMENTS],
            )
    run.log_metrics(metrics)
    run.client.set_tag(run.run_id, MODEL_URI_TAG, info.model_uri)
    return info.model_uri
