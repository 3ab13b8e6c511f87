"""The check before scoring: no test clip may be in the separator's training data."""

import pandas as pd
import pytest

from danet_music2vec.data.manifest import SeenClipError, check_unseen, esc50_name, seen_test_clips

TRAINED = [
    {"clip_id": "music/rock/song_1", "kind": "music", "label": "rock", "sha256": "aa" * 32, "role": "train"},
    {"clip_id": "separation/extra-noise/audio/1-100032-A-0", "kind": "noise", "label": "dog", "sha256": "bb" * 32,
     "role": "train"},
    {"clip_id": "noise/2-1234-B-5", "kind": "noise", "label": "cat", "sha256": "cc" * 32, "role": "validation"},
]


def _test_split(*rows: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame([{"clip_id": c, "source_path": f"data/local/{c}.wav", "source_sha256": d} for c, d in rows])


def test_esc50_names_are_recognised_in_any_folder():
    assert esc50_name("noise/dogs/1-100032-A-0") == "1-100032-A-0"
    assert esc50_name("music/rock/song_1") is None


def test_a_clip_is_seen_by_its_bytes_or_as_the_same_esc50_clip_in_another_format():
    test = _test_split(("music/pop/renamed", "aa" * 32),  # same file, another name
                       ("noise/1-100032-A-0", "ff" * 32),  # same ESC-50 clip, re-encoded (another digest)
                       ("noise/3-999-A-1", "dd" * 32))  # fmt: skip
    seen = seen_test_clips(test, TRAINED)
    assert list(seen["clip_id"]) == ["music/pop/renamed", "noise/1-100032-A-0"]
    assert list(seen["trained_as"]) == ["music/rock/song_1", "separation/extra-noise/audio/1-100032-A-0"]


def test_the_error_names_the_first_clip_the_model_and_the_fix():
    test = _test_split(("noise/2-1234-B-5", "ee" * 32), ("music/pop/x", "aa" * 32))
    with pytest.raises(SeenClipError) as err:
        check_unseen(test, TRAINED, "models/separator_network.pt")
    message = str(err.value)
    assert "\n" not in message and message.startswith("data/local/noise/2-1234-B-5.wav: test clip noise/2-1234-B-5")
    assert "models/separator_network.pt" in message and "(and 1 more)" in message and "separator.start: scratch" in message


def test_unseen_test_clips_pass():
    check_unseen(_test_split(("noise/3-999-A-1", "dd" * 32)), TRAINED, "m.pt")
    check_unseen(_test_split(("noise/3-999-A-1", "dd" * 32)), [], "m.pt")  # an empty manifest sees nothing


def test_the_stage_error_is_a_data_error():
    from danet_music2vec.data.sources import SourceError
    from danet_music2vec.stage import USER_ERRORS

    assert issubclass(SeenClipError, SourceError) and issubclass(SeenClipError, USER_ERRORS)
