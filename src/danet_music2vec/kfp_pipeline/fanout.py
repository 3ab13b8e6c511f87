"""The Kubeflow pipeline's first step: the ``--shard`` values its ParallelFor loops run over.

    python -m danet_music2vec.kfp_pipeline.fanout 4 OUTPUT     # writes ["0/4", "1/4", "2/4", "3/4"] to OUTPUT
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from danet_music2vec.shards import shard_specs


def main(argv: Sequence[str] | None = None) -> int:
    count, output = argv if argv is not None else sys.argv[1:]
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(json.dumps(shard_specs(int(count))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
