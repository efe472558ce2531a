# pamiqx on a GPU host that runs VRChat: CUDA runtime, Python 3.12, the project and
# every plugin from uv.lock, plus inputtino (mouse through /dev/uinput) from its git
# repository as upstream documents. Build: `make docker-build`; run: `make docker-up`.
FROM nvidia/cuda:13.0.1-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PAMIQX_LOG_DIR=/logs \
    PULSE_SERVER=unix:/run/pulse/native

# Ubuntu 24.04's Python is 3.12. git, cmake, build-essential, pkg-config and
# libevdev-dev build inputtino; libpulse0 serves AudioSensor; v4l-utils lists
# cameras; libgl1/libglib2.0-0 are opencv's runtime libraries.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Unpinned on purpose: the base image's Ubuntu release pins the series, and
# security updates should come in with each rebuild.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3.12 python3.12-venv python3.12-dev \
        git cmake build-essential pkg-config libevdev-dev clang \
        libpulse0 libgl1 libglib2.0-0 v4l-utils tmux ca-certificates \
    && rm -rf /var/lib/apt/lists/*

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /uvx /usr/local/bin/

WORKDIR /app
# Dependencies first (a layer that survives code changes), then the project itself.
COPY pyproject.toml uv.lock README.md ./
COPY plugins/ plugins/
RUN uv sync --locked --all-packages --no-dev --no-install-workspace --python /usr/bin/python3.12
COPY . .
RUN uv sync --locked --all-packages --no-dev --python /usr/bin/python3.12 \
    && uv pip install --python /opt/venv/bin/python \
        "inputtino-python @ git+https://github.com/games-on-whales/inputtino.git@stable#subdirectory=bindings/python" \
    && python -c "import pamiq_vrchat, inputtino, pamiqx_vrchat"

# Runs, checkpoints and the Aim repository live on the host (make docker-up LOG_DIR=...).
VOLUME ["/logs"]
ENTRYPOINT ["pamiqx"]
CMD ["run", "experiments/vrchat-none.toml"]
