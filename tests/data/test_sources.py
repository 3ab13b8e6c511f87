import pandas as pd
import pytest

from danet_music2vec.data.sources import SourceError, held_out_of_pool, scan_music, scan_noise, scan_separation_noise


def test_music_genres_come_from_folders_and_groups_from_meta(make_library):
    music_dir, _ = make_library()
    (music_dir / "meta.csv").write_text("filename,genre,original_file\nrock/rock.00000.wav,rock,song_a\nrock/rock.00001.wav,rock,song_a\n")
    music = scan_music(music_dir)
    assert sorted(music["label"].unique()) == ["folk", "rock"]
    groups = dict(zip(music["clip_id"], music["group"]))
    assert groups["music/rock/rock.00000"] == groups["music/rock/rock.00001"] == "song_a"
    assert groups["music/rock/rock.00002"] == "rock/rock.00002.wav"


def test_noise_metadata_from_esc50_csv(make_library):
    _, noise_dir = make_library()
    noise = scan_noise(noise_dir)
    assert len(noise) == 6
    assert set(noise["label"]) == {"cat0", "cat1", "cat2"}
    assert (noise["fold"] > 0).all()


def test_file_missing_from_csv_is_named(make_library):
    _, noise_dir = make_library()
    stray = noise_dir / "stray.wav"
    stray.write_bytes((noise_dir / sorted(p.name for p in noise_dir.glob("*.wav"))[0]).read_bytes())
    with pytest.raises(SourceError, match="stray.wav: not listed"):
        scan_noise(noise_dir)


def test_missing_folders_and_loose_music_files(tmp_path, make_library):
    with pytest.raises(SourceError, match="data.music_dir"):
        scan_music(tmp_path / "absent")
    music_dir, _ = make_library()
    (music_dir / "loose.wav").write_bytes((music_dir / "rock" / "rock.00000.wav").read_bytes())
    with pytest.raises(SourceError, match="genre sub-folder"):
        scan_music(music_dir)


def test_a_separation_noise_pool_is_catalogued_and_the_test_recordings_are_held_out(make_library):
    _, noise_dir = make_library(noises=10)
    pool = scan_separation_noise(noise_dir)
    assert pool["clip_id"].str.startswith("separation/noise/").all() and (pool["kind"] == "noise").all()
    assert set(pool["label"]) == {"cat0", "cat1", "cat2"} and pool["group"].str.startswith("noise:").all()
    # The profile's own noise clips: one recording of the pool (another take, same src_file) is among them.
    own = pd.DataFrame({"kind": ["noise", "music"], "group": ["2-1001", "x"]})
    held = held_out_of_pool(pool, own, test_folds=[5])
    names = pool.loc[held, "clip_id"].str.rsplit("/", n=1).str[1]
    assert sorted(names) == ["2-1001-A-1", "5-1004-A-1", "5-1009-A-0"]  # the profile's recording and fold 5


def test_a_missing_pool_folder_names_the_param(tmp_path):
    with pytest.raises(SourceError, match="data.separation_noise_dirs"):
        scan_separation_noise(tmp_path / "absent")
