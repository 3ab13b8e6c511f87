# The image every step of the Kubeflow pipeline runs in (README, Scale):
#   docker build -t danet-music2vec:0.1.0 .        (or: make image)
# BASE_IMAGE: python:3.11-slim, or any Debian-like image with python3.11 and its venv module.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# A virtual environment, so that the same steps work on python:3.11-slim and on a
# distribution's python3.11, whose system site-packages pip may not write (PEP 668).
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DVC_NO_ANALYTICS=1 \
    MPLBACKEND=Agg
RUN python3 -m venv /opt/venv

# The stages run from here (danet_music2vec.kfp_pipeline.IMAGE_WORKDIR).
WORKDIR /app

# The pins alone first: this large layer (torch with its CUDA libraries) is rebuilt only when they change.
COPY requirements.lock ./
RUN pip install --no-cache-dir --disable-pip-version-check -r requirements.lock

COPY . .
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps . \
    && python -c "import danet_music2vec.kfp_pipeline.runner"
