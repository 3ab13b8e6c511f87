"""The DVC stages as a Kubeflow Pipelines (kfp v2) pipeline, built from ``dvc.yaml`` and ``params.yaml``.

    dm2v kfp compile -o pipeline.yaml [--image REGISTRY/danet-music2vec:TAG]

- :mod:`.dvc_stages` reads the stages, their deps/outs/params and the params tree;
- :mod:`.compiler` makes one container component per stage and compiles the pipeline;
- :mod:`.runner` is what each component runs in the project image: it lays out the
  stage's inputs, writes ``params.yaml`` and runs the stage's own ``cmd`` unchanged.

Every params.yaml leaf is a string pipeline parameter named with ``__`` for ``.``
(``separator.epochs`` -> ``separator__epochs``) and holding YAML, as ``dvc exp run -S``
takes it: ``noises=2``, ``mix__snr_db=[-5, 5]``, ``danet__grad_clip=null``.

Outputs travel as KFP artifacts, not through a DVC remote. Each DVC out is an output
artifact of its stage's task and an input artifact of every task that depends on it,
so KFP's own object store moves the data, records its lineage and caches each step;
pods need no DVC remote credentials and no git checkout. A DVC remote would also
need each step's updated ``dvc.lock`` entry handed to the next step (``dvc pull``
finds outs by the hashes recorded there), which is an artifact hand-off anyway.
The cost: a pipeline run's outputs live in KFP's artifact store, not in the DVC
cache; ``dvc commit`` takes them in after they are copied into a workspace.
"""

# The Dockerfile copies the project here and makes it the working directory.
IMAGE_WORKDIR = "/app"
# What the Dockerfile's build is tagged in the README; a cluster needs REGISTRY/ in front.
DEFAULT_IMAGE = "danet-music2vec:0.1.0"
