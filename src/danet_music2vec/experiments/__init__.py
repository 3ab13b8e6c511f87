"""The experiments beside the pipeline: the ablation (docs/RESULTS.md) and the separator comparison (docs/SEPARATORS.md).

- :mod:`.variants`: the recipes (params.yaml plus overrides), in one format, and the names their experiments are
  saved under;
- :mod:`.runner`: the one ``dvc exp run`` loop that runs them;
- :mod:`.records`: what the experiments recorded (MLflow through :mod:`danet_music2vec.tracking`, DVC experiment refs
  through git), in the names of today's params.yaml and score stage;
- :mod:`.reports`: the markdown tables and figures written from those records.

``scripts/ablation.py`` and ``scripts/compare_separators.py`` are the command lines over them.
"""
