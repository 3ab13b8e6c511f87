"""The served model's code: an MLflow pyfunc around :class:`danet_music2vec.service.Service`.

MLflow copies this file into every packaged model ("models from code": no pickle of a
class, nothing but this file and the artifacts) and runs it when the model is loaded,
by ``mlflow.pyfunc.load_model`` or ``mlflow models serve``. It is never imported by the
package (``tracking/__init__`` does not import it), so importing the package still does
not import mlflow. :mod:`.packaging` logs it with its artifacts.
"""

from __future__ import annotations

import json
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from danet_music2vec.service import Limits, RequestError, Service


class RequestRejected(MlflowException):
    """A bad request: the scoring server answers 400 with ``{"error_code": ..., "message": <one line>}``.

    The scoring server rewrites the message of an MlflowException raised by ``predict`` to
    "Failed to predict data '<the whole input frame>'. \\nError: ..." (several lines of the
    base64 audio); the property keeps the one line that names the problem.
    """

    def __init__(self, line: str) -> None:
        self._line = line
        super().__init__(line, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:  # type: ignore[override]
        return self._line

    @message.setter
    def message(self, value: str) -> None:
        pass  # see the class docstring: the one line stays


class AudioModel(mlflow.pyfunc.PythonModel):
    """Rows of audio (see :mod:`danet_music2vec.service`) -> rows of denoised music, genre and probabilities."""

    def load_context(self, context: Any) -> None:
        with open(context.artifacts["settings"]) as f:
            settings = json.load(f)
        artifacts = context.artifacts
        self.service = Service.load(artifacts["separator"], artifacts["classifier"], artifacts["adapted_classifier"],
                                    Limits(**settings["limits"]))  # fmt: skip

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201 - no hints: MLflow would take them for the schema
        rows = model_input.to_dict("records") if isinstance(model_input, pd.DataFrame) else list(model_input)
        answers = []
        for i, row in enumerate(rows):
            try:
                answers.append(self.service.answer(row))
            except RequestError as err:
                raise RequestRejected(f"row {i}: {err}" if len(rows) > 1 else str(err)) from None
        return pd.DataFrame(answers)


mlflow.models.set_model(AudioModel())
