"""Download and unpack the ``full`` profile's archives: GTZAN (music) and ESC-50 (noise).

- :mod:`.http`: one file from a list of mirrors, resumed with HTTP range requests,
  checksum-verified, renamed into place only when verified (``download_file``).
- :mod:`.archives`: safe tar / zip extraction, renamed into place only when the data
  folder is found and complete (``extract_to``).
- :mod:`.datasets`: what differs per data set (mirrors, checksums, layout, the folder
  that comes out) and the one fetcher for all of them (``fetch``, with ``fetch_gtzan``
  and ``fetch_esc50`` for the two built-in ones).
"""

from danet_music2vec.data.download.archives import ArchiveError
from danet_music2vec.data.download.datasets import (
    ESC50_ARCHIVE,
    GTZAN_ARCHIVE,
    ArchiveSpec,
    fetch,
    fetch_esc50,
    fetch_gtzan,
)
from danet_music2vec.data.download.http import DownloadError, Mirror, download_file, file_digests

__all__ = [
    "ArchiveError",
    "ArchiveSpec",
    "DownloadError",
    "ESC50_ARCHIVE",
    "GTZAN_ARCHIVE",
    "Mirror",
    "download_file",
    "fetch",
    "fetch_esc50",
    "fetch_gtzan",
    "file_digests",
]
