# syntax=docker/dockerfile:1
#
# Nexus images. Targets:
#   cpu   (default, the last stage)  docker build -t nexus:cpu .
#   cuda                             docker build --target cuda -t nexus:cuda .
# Build arguments:
#   DEFAULT_MODEL=1        bake in the default model (smollm2:135m, 98 MB); it is registered in
#                          the store on the volume when the server starts
#   ENGINE=native          cpu only: compile the engine for the build machine's CPU (slower build,
#                          faster decode; the image then needs a CPU like the build machine's)
#   CUDA_ARCHITECTURES     cuda only: GPU compute capabilities to compile for (Turing to Hopper)
#   XLLAMACPP_VERSION      cuda only: engine version (default: the newest pyproject.toml allows)
#   ENGINE_JOBS            cuda only: parallel compile jobs (default: all cores)
#   NEXUS_UID              uid and gid of the `nexus` user the server runs as
# install.sh reads DEFAULT_MODEL from the build argument of that name.
# Both images run as `nexus`, whose home is /root, so the volume layout is Ollama's
# (/root/.ollama); see docs/deploy.md for volumes created by Ollama's image (owned by root).

ARG PYTHON_VERSION=3.12
ARG DEBIAN_RELEASE=bookworm
ARG CUDA_VERSION=12.8.1
ARG UBUNTU_VERSION=24.04

# ---------------------------------------------------------------------------------------------
# CUDA engine: xllamacpp compiled from its PyPI source with nvcc, as a wheel in /wheels.
FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu${UBUNTU_VERSION} AS engine-cuda
ARG CUDA_ARCHITECTURES="75;80;86;89;90"
ARG XLLAMACPP_VERSION=""
ARG ENGINE_JOBS=""
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Distribution packages are not pinned: the CUDA base image tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential cmake git python3 python3-dev python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY pyproject.toml ./
COPY deploy/build-engine.sh deploy/
RUN python3 -m venv /build/venv \
    && deploy/build-engine.sh --python /build/venv/bin/python --cuda --portable --no-install \
        --arch "${CUDA_ARCHITECTURES}" --wheel-dir /wheels \
        ${XLLAMACPP_VERSION:+--version "${XLLAMACPP_VERSION}"} \
        ${ENGINE_JOBS:+--jobs "${ENGINE_JOBS}"}

# ---------------------------------------------------------------------------------------------
# CUDA runtime: the wheel above, Nexus and its dependencies, on NVIDIA's runtime image.
FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu${UBUNTU_VERSION} AS cuda
ARG DEFAULT_MODEL=0
ARG NEXUS_UID=10001
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Distribution packages are not pinned: the CUDA base image tag fixes the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid "${NEXUS_UID}" nexus \
    && useradd --system --uid "${NEXUS_UID}" --gid nexus --home-dir /root --no-create-home \
        --shell /usr/sbin/nologin nexus \
    && chmod 0755 /root \
    && mkdir -p /root/.ollama/models /root/.nexus /data \
    && chown -R nexus:nexus /root/.ollama /root/.nexus /data
COPY pyproject.toml README.md /src/
COPY src /src/src
COPY deploy /src/deploy
RUN --mount=type=bind,from=engine-cuda,source=/wheels,target=/wheels \
    --mount=type=cache,target=/root/.cache/pip \
    /src/deploy/install.sh --prefix /opt/nexus --src /src --engine /wheels --python python3 \
    && install -m 0755 /src/deploy/entrypoint.sh /usr/local/bin/nexus-entrypoint \
    && install -m 0755 /src/deploy/healthcheck.py /usr/local/bin/nexus-healthcheck \
    && rm -rf /src
ENV PATH=/opt/nexus/bin:${PATH} \
    HOME=/root \
    PYTHONUNBUFFERED=1 \
    OLLAMA_HOST=0.0.0.0:11434 \
    NEXUS_IMPORT_DEFAULT=${DEFAULT_MODEL}
USER ${NEXUS_UID}:${NEXUS_UID}
WORKDIR /root
EXPOSE 11434
HEALTHCHECK --interval=15s --timeout=6s --start-period=60s --retries=5 CMD ["nexus-healthcheck"]
ENTRYPOINT ["nexus-entrypoint"]
CMD ["serve"]

# ---------------------------------------------------------------------------------------------
# CPU (default target): the PyPI engine wheel (or, with ENGINE=native, one compiled here).
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS cpu
ARG DEFAULT_MODEL=0
ARG ENGINE=pypi
ARG NEXUS_UID=10001
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN groupadd --system --gid "${NEXUS_UID}" nexus \
    && useradd --system --uid "${NEXUS_UID}" --gid nexus --home-dir /root --no-create-home \
        --shell /usr/sbin/nologin nexus \
    && chmod 0755 /root \
    && mkdir -p /root/.ollama/models /root/.nexus /data \
    && chown -R nexus:nexus /root/.ollama /root/.nexus /data
COPY pyproject.toml README.md /src/
COPY src /src/src
COPY deploy /src/deploy
# A compiler is needed only to build the engine here (ENGINE=native); it is removed after.
# hadolint ignore=DL3008
RUN --mount=type=cache,target=/root/.cache/pip \
    if [ "${ENGINE}" = native ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends build-essential cmake git; \
    fi \
    && /src/deploy/install.sh --prefix /opt/nexus --src /src --engine "${ENGINE}" --python python3 \
    && if [ "${ENGINE}" = native ]; then \
        apt-get purge -y --auto-remove build-essential cmake git \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && install -m 0755 /src/deploy/entrypoint.sh /usr/local/bin/nexus-entrypoint \
    && install -m 0755 /src/deploy/healthcheck.py /usr/local/bin/nexus-healthcheck \
    && rm -rf /src
ENV PATH=/opt/nexus/bin:${PATH} \
    HOME=/root \
    PYTHONUNBUFFERED=1 \
    OLLAMA_HOST=0.0.0.0:11434 \
    NEXUS_IMPORT_DEFAULT=${DEFAULT_MODEL}
USER ${NEXUS_UID}:${NEXUS_UID}
WORKDIR /root
EXPOSE 11434
HEALTHCHECK --interval=15s --timeout=6s --start-period=60s --retries=5 CMD ["nexus-healthcheck"]
ENTRYPOINT ["nexus-entrypoint"]
CMD ["serve"]
