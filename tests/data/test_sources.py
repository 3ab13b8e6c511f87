import pytest

from danet_music2vec.data.sources import SourceError, scan_music, scan_noise


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
