"""separate: run the trained separator on every TEST mixture (data/separated/<mixture_id>/{music,noise}.flac + index).

Before anything is separated, the test clips are checked against the separator's training
manifest (a shipped separator, or a `local` profile's folders, may hold clips it trained on):
one of them in it stops the stage with a line naming the clip.

Also writes models/separator.pt: the trained network with the inference settings (`separate`
params) it was scored with here, which the `sweep` stage and `dm2v denoise` load, so all three
separate alike.
"""

import time

import pandas as pd
import torch
from tqdm import tqdm

from danet_music2vec import checkpoints, stage
from danet_music2vec.atomic import atomic_dir, write_json, write_parquet
from danet_music2vec.audio import save_audio
from danet_music2vec.data.manifest import check_unseen
from danet_music2vec.data.sources import SourceError
from danet_music2vec.data.mixing import render_mixture
from danet_music2vec.params import load_params
from danet_music2vec.separation import Separator, timed_separate
from danet_music2vec.tracking import stage_run

OUT = "data/separated"
NETWORK = "models/separator_network.pt"
MODEL = "models/separator.pt"


def main() -> None:
    params = load_params()
    start = time.perf_counter()
    with stage_run("separate", params.used(), groups=("separate",)) as run:
        network = checkpoints.load(NETWORK, "separator")
        splits = pd.read_parquet("data/splits.parquet")
        check_unseen(splits[splits["split"] == "test"], network["training_clips"], NETWORK)
        separator = Separator.from_network(network, params.separate)
        mixtures = pd.read_parquet("data/mixtures.parquet")
        test = mixtures[mixtures["split"] == "test"]
        if test.empty:
            raise SourceError("data/mixtures.parquet has no test mixtures; check split.test_fraction and run `dvc repro mix`")
        rows, clipped = [], 0
        with atomic_dir(OUT) as tmp:
            for row in tqdm(list(test.itertuples()), desc="separate", unit="track"):
                rendered = render_mixture(row)
                result, seconds = timed_separate(separator, rendered.mixture, int(row.sample_rate))
                rate = separator.output_sample_rate(int(row.sample_rate))
                clipped += save_audio(tmp / row.mixture_id / "music.flac", result.music, rate)
                clipped += save_audio(tmp / row.mixture_id / "noise.flac", result.noise, rate)
                rows.append(
                    {
                        "mixture_id": row.mixture_id,
                        "music_path": f"{OUT}/{row.mixture_id}/music.flac",
                        "noise_path": f"{OUT}/{row.mixture_id}/noise.flac",
                        "sample_rate": rate,
                        "seconds": row.num_samples / row.sample_rate,
                        "processing_s": seconds,
                        "swapped": result.order.swaps,
                        "decisions": result.order.decisions,
                    }
                )
            write_parquet(tmp / "index.parquet", pd.DataFrame(rows))
        index = pd.DataFrame(rows)
        metrics = {
            "tracks": len(index),
            "audio_seconds": float(index["seconds"].sum()),
            "processing_seconds": float(index["processing_s"].sum()),
            # real_time_factor = processing time / audio time (below 1: faster than real time)
            "real_time_factor": float(index["processing_s"].sum() / index["seconds"].sum()),
            "x_real_time": float(index["seconds"].sum() / index["processing_s"].sum()),
            "swaps": int(index["swapped"].sum()),
            "swap_decisions": int(index["decisions"].sum()),
            "swap_rate": float(index["swapped"].sum() / index["decisions"].sum()) if index["decisions"].sum() else 0.0,
            "clipped_samples": clipped,
            "sample_rate": int(index["sample_rate"].iloc[0]),
            "threads": torch.get_num_threads(),
            "stage_seconds": time.perf_counter() - start,
        }
        run.log_metrics(metrics)
        inference = params.separate.used(network["model_config"]["architecture"])
        checkpoints.save(MODEL, "separator", network | {"inference": inference})
        write_json("metrics/separate.json", metrics)


if __name__ == "__main__":
    stage.run(main, "separate")
