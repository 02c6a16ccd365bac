# syntax=docker/dockerfile:1.7
# llmft in a container: the API (gunicorn) or a job worker, CPU or CUDA, from one file.
#
#   docker build -t llmft:cpu .                                   # CPU (PyTorch's CPU wheel, small)
#   docker build --build-arg VARIANT=cuda -t llmft:cuda .         # NVIDIA GPUs (PyTorch's CUDA wheel)
#   docker run llmft:cpu api | worker | <any command>
#
# Both run as an unprivileged user with all state under /var/lib/llmft (mount a volume there) and
# migrate the database before they start (`llmft db upgrade`, one process at a time under a lock).
ARG VARIANT=cpu

# --- bases: Python 3.11 in /opt/venv, with the matching PyTorch 2.13.0 build --------------------
FROM python:3.11-slim AS cpu-base
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04 AS cuda-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir torch==2.13.0

# --- build: the llmft wheel and its dependencies, without the sources' clutter ------------------
FROM ${VARIANT}-base AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY llmft ./llmft
RUN /opt/venv/bin/pip install --no-cache-dir .

# --- the image ----------------------------------------------------------------------------------
FROM ${VARIANT}-base AS app
COPY --from=build /opt/venv /opt/venv
COPY config /opt/llmft/config
COPY deploy/start.sh /usr/local/bin/llmft-start
RUN useradd --create-home --uid 10001 llmft \
 && mkdir -p /var/lib/llmft \
 && chown llmft /var/lib/llmft \
 && chmod 0755 /usr/local/bin/llmft-start
USER llmft
WORKDIR /var/lib/llmft
ENV PATH=/opt/venv/bin:$PATH \
    LLMFT_HOME=/var/lib/llmft \
    HF_HOME=/var/lib/llmft/hf \
    HOST=0.0.0.0 \
    PORT=8000 \
    PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=4)" || exit 1
ENTRYPOINT ["llmft-start"]
CMD ["api"]
