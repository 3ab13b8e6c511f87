import numpy as np
import pandas as pd
import pytest

from danet_music2vec.audio import AudioError
from danet_music2vec.data.ingest import catalogue_sources, ingest
from tests.conftest import repo_params, write_audio


def local_params(music_dir, noise_dir):
    data = repo_params().data
    return data.model_copy(update={"profile": "local", "music_dir": str(music_dir), "noise_dir": str(noise_dir), "noise_csv": None})


def test_ingest_converts_everything_to_one_rate(tmp_path, make_library):
    music_dir, noise_dir = make_library()
    manifest, skipped = ingest(catalogue_sources(local_params(music_dir, noise_dir)), tmp_path / "raw", 22050,
                               {"music": 1.0, "noise": 1.0}, progress=False)  # fmt: skip
    assert skipped == [] and len(manifest) == 8 + 6
    assert (manifest["duration_s"].round(3).loc[manifest["kind"] == "noise"] == 2.0).all()
    assert pd.read_parquet(tmp_path / "raw" / "manifest.parquet")["sha256"].str.len().eq(64).all()


def test_bad_file_stops_with_its_name_and_keeps_previous_output(tmp_path, make_library):
    music_dir, noise_dir = make_library()
    catalogue = catalogue_sources(local_params(music_dir, noise_dir))
    out = tmp_path / "raw"
    ingest(catalogue, out, 22050, {"music": 1.0, "noise": 1.0}, progress=False)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    silent = write_audio(music_dir / "rock" / "rock.00099.wav", np.zeros(22050 * 3, np.float32), 22050)
    catalogue = catalogue_sources(local_params(music_dir, noise_dir))
    with pytest.raises(AudioError, match=r"rock.00099.wav: is silent.*\(or data.on_bad_file: skip leaves bad files out\)"):
        ingest(catalogue, out, 22050, {"music": 1.0, "noise": 1.0}, progress=False)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".raw")]  # no temp dir left behind

    manifest, skipped = ingest(catalogue, out, 22050, {"music": 1.0, "noise": 1.0}, "skip", progress=False)
    assert skipped == [{"file": str(silent), "reason": "is silent (peak below -80 dBFS)"}]
    assert len(manifest) == 14
