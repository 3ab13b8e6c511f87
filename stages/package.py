"""package: the pipeline's product, one audio-in MLflow model (separator + both classifiers + the rule + their settings)
with the run's scores.

`dm2v promote` registers the best of these models; `mlflow models serve` serves it (docs/SERVING.md).
"""

import json
import time
from pathlib import Path

from danet_music2vec import stage
from danet_music2vec.atomic import write_json
from danet_music2vec.evaluation import HEADLINE_METRICS
from danet_music2vec.params import load_params
from danet_music2vec.service import Limits
from danet_music2vec.tracking import stage_run
from danet_music2vec.tracking.packaging import log_audio_model

MODELS = (Path("models/separator.pt"), Path("models/music2vec.pt"), Path("models/music2vec_adapted.pt"))


def main() -> None:
    params = load_params()
    start = time.perf_counter()
    with stage_run("package", params.used(), groups=("serve",)) as run:
        scores = json.loads(Path("metrics/score.json").read_text())
        headline = {k: scores[k] for k in HEADLINE_METRICS if scores.get(k) is not None}
        uri = log_audio_model(run, *MODELS, Limits(max_seconds=params.serve.max_seconds), headline)
        metrics = {
            "max_seconds": params.serve.max_seconds,
            "model_mib": sum(p.stat().st_size for p in MODELS) / 2**20,
            "stage_seconds": time.perf_counter() - start,
        }
        run.log_metrics(metrics)
        write_json("metrics/package.json", metrics)
    print(f"package: {uri} (run {run.run_id}); register the best run with `dm2v promote`")


if __name__ == "__main__":
    stage.run(main, "package")
