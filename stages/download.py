"""download: bring the profile's music and noise into data/raw/ (validated, mono, 22.05 kHz FLAC + manifest)."""

import time

from danet_music2vec import stage
from danet_music2vec.atomic import write_json
from danet_music2vec.data.ingest import catalogue_sources, ingest
from danet_music2vec.params import load_params
from danet_music2vec.tracking import stage_run


def main() -> None:
    params = load_params()
    data = params.data
    start = time.perf_counter()
    with stage_run("download", params.used(), groups=("data",)) as run:
        catalogue = catalogue_sources(data)
        manifest, skipped = ingest(
            catalogue,
            "data/raw",
            data.sample_rate,
            {"music": data.min_music_seconds, "noise": data.min_noise_seconds},
            data.on_bad_file,
        )
        metrics = {
            "clips.music": int((manifest["kind"] == "music").sum()),
            "clips.noise": int((manifest["kind"] == "noise").sum()),
            "clips.skipped": len(skipped),
            "seconds.music": float(manifest.loc[manifest["kind"] == "music", "duration_s"].sum()),
            "seconds.noise": float(manifest.loc[manifest["kind"] == "noise", "duration_s"].sum()),
            "stage_seconds": time.perf_counter() - start,
        }
        run.log_metrics(metrics)
        write_json("metrics/download.json", metrics | {"skipped_files": skipped})


if __name__ == "__main__":
    stage.run(main, "download")
