"""download/datasets.py (with archives.py): fetch GTZAN / ESC-50 archives in their real layouts.

The archives are built here and served by the local HTTP server of conftest.py.
"""

from __future__ import annotations

import io
import re
import tarfile
import zipfile

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from danet_music2vec.data.download import ArchiveError, DownloadError, fetch_esc50, fetch_gtzan
from danet_music2vec.data.download import datasets as dl
from tests.data.download.conftest import TIMEOUT, sha256_hex


def test_fetch_hint_names_archive_and_local_profile(refused_url, tmp_path):
    with pytest.raises(DownloadError) as err:
        fetch_gtzan(tmp_path / "downloads", progress=False, urls=[refused_url], timeout=TIMEOUT)
    msg = str(err.value)
    assert "download genres.tar.gz by hand" in msg and str(tmp_path / "downloads") in msg
    assert "data.profile: local" in msg and "data.music_dir" in msg


# --- archives in the real layouts --------------------------------------------------------


def _wav_bytes(seconds: float, sr: int, seed: int) -> bytes:
    buf = io.BytesIO()
    tone = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr)).astype(np.float32)
    sf.write(buf, tone, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


GENRES = ("blues", "rock")


def _gtzan_tar(extra: dict[str, bytes] | None = None) -> bytes:
    files = {f"genres/{g}/{g}.0000{i}.wav": _wav_bytes(0.2, 22050, seed=i) for g in GENRES for i in range(2)}
    files["genres/bextract_single.mf"] = b"genres/blues/blues.00000.wav\tblues\n"
    files["genres/blues/._blues.00000.wav"] = b"\x00\x05\x16\x07 AppleDouble junk"
    files.update(extra or {})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buf.getvalue()


ESC_ROWS = [("1-100-A-0.wav", 1, 0, "dog"), ("2-200-A-1.wav", 2, 1, "rooster"), ("5-300-B-0.wav", 5, 0, "dog")]


def _esc50_zip(top: str = "ESC-50-master", rows=ESC_ROWS, extra_audio: tuple[str, ...] = (),
               extra_members: dict[str, bytes] | None = None) -> bytes:
    csv = "filename,fold,target,category,esc10,src_file,take\n" + "".join(
        f"{f},{fold},{t},{c},False,{i},A\n" for i, (f, fold, t, c) in enumerate(rows))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{top}/", b"")
        zf.writestr(f"{top}/README.md", b"# ESC-50\n")
        zf.writestr(f"{top}/LICENSE", b"CC BY-NC 3.0\n")
        zf.writestr(f"{top}/meta/esc50.csv", csv)
        for i, (name, *_rest) in enumerate(rows):
            zf.writestr(f"{top}/audio/{name}", _wav_bytes(0.1, 44100, seed=10 + i))
        for name in extra_audio:
            zf.writestr(f"{top}/audio/{name}", _wav_bytes(0.1, 44100, seed=99))
        for name, content in (extra_members or {}).items():
            zf.writestr(name, content)
    return buf.getvalue()


def test_fetch_gtzan_end_to_end_and_reuse(server, tmp_path):
    archive = _gtzan_tar()
    url = server.add("/genres.tar.gz", archive, mode="cut", cut_after=len(archive) // 3)
    downloads = tmp_path / "downloads"
    genres = fetch_gtzan(downloads, progress=False, urls=[url], sha256=sha256_hex(archive), timeout=TIMEOUT)
    assert genres == downloads / "genres"
    wavs = sorted(p.relative_to(genres).as_posix() for p in genres.rglob("*.wav"))
    assert wavs == [f"{g}/{g}.0000{i}.wav" for g in GENRES for i in range(2)]  # no ._ junk
    audio, sr = sf.read(genres / "rock" / "rock.00001.wav")
    assert sr == 22050 and len(audio) == int(0.2 * 22050)
    assert (downloads / "genres.tar.gz").read_bytes() == archive
    assert not list(downloads.glob(".genres.*")) and not list(downloads.glob("*.part*"))
    assert "Range" in server.headers_for("/genres.tar.gz")[-1]  # the cut was resumed

    # A complete extraction is reused: no request, the archive is not even read.
    n = len(server.requests)
    (downloads / "genres.tar.gz").unlink()
    assert fetch_gtzan(downloads, progress=False, urls=[url], timeout=TIMEOUT) == genres
    assert len(server.requests) == n


def test_fetch_gtzan_interrupted_extraction_restarts_cleanly(server, tmp_path):
    archive = _gtzan_tar()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "genres.tar.gz").write_bytes(archive)  # pre-placed
    stale = downloads / ".genres.abc123.tmp" / "genres" / "blues"
    stale.mkdir(parents=True)
    (stale / "blues.00000.wav").write_bytes(b"half written")
    genres = fetch_gtzan(downloads, progress=False, urls=[server.base + "/unused"], sha256=sha256_hex(archive),
                         timeout=TIMEOUT)
    assert server.requests == []
    assert not stale.exists() and sorted(p.name for p in downloads.iterdir()) == ["genres", "genres.tar.gz"]
    assert sf.read(genres / "blues" / "blues.00000.wav")[1] == 22050


def test_fetch_gtzan_rejects_path_traversal(tmp_path):
    archive = _gtzan_tar(extra={"../evil.wav": b"owned"})
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "genres.tar.gz").write_bytes(archive)
    with pytest.raises(ArchiveError, match="unsafe member"):
        fetch_gtzan(downloads, progress=False, urls=["http://127.0.0.1:9/unused"], sha256=sha256_hex(archive))
    assert not (tmp_path / "evil.wav").exists()
    assert sorted(p.name for p in downloads.iterdir()) == ["genres.tar.gz"]


def test_fetch_gtzan_wrong_layout(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("something/else.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "genres.tar.gz").write_bytes(buf.getvalue())
    with pytest.raises(ArchiveError, match=r"genres/<genre>/<genre>\.000NN"):
        fetch_gtzan(downloads, progress=False, urls=["http://127.0.0.1:9/unused"])
    assert sorted(p.name for p in downloads.iterdir()) == ["genres.tar.gz"]


def test_fetch_esc50_end_to_end_and_reuse(server, tmp_path):
    archive = _esc50_zip(top=f"ESC-50-{dl.ESC50_COMMIT}", extra_members={"__MACOSX/._x": b"junk"})
    url = server.add("/esc50.zip", archive)
    downloads = tmp_path / "downloads"
    audio, csv = fetch_esc50(downloads, progress=False, urls=[url], sha256=sha256_hex(archive), timeout=TIMEOUT)
    assert audio == downloads / "ESC-50" / "audio" and csv == downloads / "ESC-50" / "meta" / "esc50.csv"
    meta = pd.read_csv(csv)
    assert list(meta["filename"]) == [r[0] for r in ESC_ROWS]
    assert sorted(p.name for p in audio.iterdir()) == sorted(r[0] for r in ESC_ROWS)
    assert sf.read(audio / "1-100-A-0.wav")[1] == 44100
    assert (downloads / "ESC-50" / "LICENSE").is_file()  # license notes travel with the data
    assert not (downloads / "__MACOSX").exists()

    n = len(server.requests)
    assert fetch_esc50(downloads, progress=False, urls=[url], timeout=TIMEOUT) == (audio, csv)
    assert len(server.requests) == n


def test_fetch_esc50_without_checksum_verifies_structure(server, tmp_path):
    # A CSV row whose clip is missing: rejected, nothing left behind but the archive.
    archive = _esc50_zip(rows=ESC_ROWS + [("3-400-A-2.wav", 3, 2, "pig")])
    with zipfile.ZipFile(io.BytesIO(archive)) as zf, zipfile.ZipFile(buf := io.BytesIO(), "w") as out:
        for info in zf.infolist():
            if not info.filename.endswith("3-400-A-2.wav"):
                out.writestr(info, zf.read(info))
    url = server.add("/esc50.zip", buf.getvalue())
    downloads = tmp_path / "downloads"
    with pytest.raises(ArchiveError, match="3-400-A-2.wav"):
        fetch_esc50(downloads, progress=False, urls=[url], timeout=TIMEOUT)
    assert sorted(p.name for p in downloads.iterdir()) == ["ESC-50-master.zip"]

    # An audio file the CSV does not list is rejected as well.
    (downloads / "ESC-50-master.zip").write_bytes(_esc50_zip(extra_audio=("9-999-A-9.wav",)))
    with pytest.raises(ArchiveError, match="not listed"):
        fetch_esc50(downloads, progress=False, urls=[url], timeout=TIMEOUT)


def test_fetch_esc50_rejects_zip_path_traversal(tmp_path):
    archive = _esc50_zip(extra_members={"ESC-50-master/../../evil.wav": b"owned"})
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "ESC-50-master.zip").write_bytes(archive)
    with pytest.raises(ArchiveError, match="unsafe member"):
        fetch_esc50(downloads, progress=False, urls=["http://127.0.0.1:9/unused"])
    assert not (tmp_path / "evil.wav").exists()
    assert sorted(p.name for p in downloads.iterdir()) == ["ESC-50-master.zip"]


# --- built-in archive descriptions -------------------------------------------------------


def test_builtin_mirror_lists():
    gtzan = dl.GTZAN_ARCHIVE
    assert gtzan.filename == "genres.tar.gz"
    assert gtzan.mirrors[-1].url == "http://opihi.cs.uvic.ca/sound/genres.tar.gz"  # the original, last
    assert len(gtzan.mirrors) >= 3
    assert all(m.sha256 and re.fullmatch(r"[0-9a-f]{64}", m.sha256) for m in gtzan.mirrors)
    assert re.fullmatch(r"[0-9a-f]{32}", dl.GTZAN_MD5)

    esc = dl.ESC50_ARCHIVE
    assert all(dl.ESC50_COMMIT in m.url for m in esc.mirrors)  # commit-pinned, content never moves
    assert esc.mirrors[0].sha256 and re.fullmatch(r"[0-9a-f]{64}", esc.mirrors[0].sha256)
    assert not esc.mirrors[-1].checked  # structure-verified fallback if GitHub re-generates the zip
