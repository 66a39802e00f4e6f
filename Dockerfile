# syntax=docker/dockerfile:1
# MPR images: one package of the uv workspace per image, with its locked dependencies and
# nothing else. Build from the repository root; SERVICE picks the package:
#
#   docker build --build-arg SERVICE=gateway    -t mpr/gateway .
#   docker build --build-arg SERVICE=catalog    -t mpr/catalog .
#   docker build --build-arg SERVICE=transcoder -t mpr/transcoder .
#   docker build --build-arg SERVICE=notifier   -t mpr/notifier .
#   docker build --target lambda                -t mpr/transcoder-lambda .   # AWS Lambda
#
# The last stage (`runtime`) is the default target; `lambda` is the transcoder as an AWS Lambda
# container image (deploy/aws/README.md).

# gateway | catalog | transcoder | notifier (no default: an image must say what it is).
ARG SERVICE
ARG PYTHON_IMAGE=python:3.11-slim
# Keep close to the uv that wrote uv.lock (`uv --version`).
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---------------------------------------------------------------- workspace
FROM ${PYTHON_IMAGE} AS workspace
COPY --from=uv /uv /uvx /bin/
# The image's own CPython (never a download), bytecode compiled once here, files copied out of
# the cache mount. https://docs.astral.sh/uv/guides/integration/docker/
ENV UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src
# uv reads the whole workspace: the lock and every member's pyproject.toml. Only these
# files, so the dependency layers below change only with the lock.
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/
COPY services/catalog/pyproject.toml services/catalog/
COPY services/gateway/pyproject.toml services/gateway/
COPY services/notifier/pyproject.toml services/notifier/
COPY services/transcoder/pyproject.toml services/transcoder/
COPY cli/pyproject.toml cli/

# ---------------------------------------------------------------- builder
# Third-party dependencies first (cached until uv.lock changes), then the two workspace
# packages as wheels (--no-editable): the runtime image needs /app/.venv only, not sources.
FROM workspace AS builder
ARG SERVICE
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package mpr-${SERVICE} --no-install-workspace --no-editable
COPY shared/ shared/
COPY services/${SERVICE}/ services/${SERVICE}/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package mpr-${SERVICE} --no-editable

# The transcoder with its `lambda` extra (awslambdaric, the runtime interface client).
FROM workspace AS lambda-builder
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package mpr-transcoder --extra lambda --no-install-workspace --no-editable
COPY shared/ shared/
COPY services/transcoder/ services/transcoder/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package mpr-transcoder --extra lambda --no-editable

# ---------------------------------------------------------------- runtime bases
FROM ${PYTHON_IMAGE} AS base
RUN groupadd --system --gid 10001 mpr \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin mpr
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app

# FFmpeg from Debian, for the services that run ffmpeg or ffprobe.
FROM base AS base-ffmpeg
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

# ---------------------------------------------------------------- one stage per service
# What differs between the services: FFmpeg or not, where the HTTP server listens inside a
# container (every interface), the health check and the command.
FROM base AS service-gateway
ENV GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ['GATEWAY_PORT'], timeout=4)"]
CMD ["python", "-m", "mpr_gateway"]

FROM base AS service-notifier
ENV NOTIFIER_HOST=0.0.0.0 \
    NOTIFIER_PORT=8001
EXPOSE 8001
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ['NOTIFIER_PORT'], timeout=4)"]
CMD ["python", "-m", "mpr_notifier"]

# Catalog and transcoder: their only HTTP server is the health app (/api/health, /api/ready,
# /metrics), on in containers.
FROM base-ffmpeg AS service-catalog
ENV HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ['HEALTH_PORT'], timeout=4)"]
CMD ["python", "-m", "mpr_catalog"]

FROM base-ffmpeg AS service-transcoder
# Scratch space for downloads and outputs (an emptyDir on Kubernetes).
RUN install -d -o 10001 -g 10001 -m 0750 /work
ENV HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=8080 \
    TRANSCODER_WORK_DIR=/work
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ['HEALTH_PORT'], timeout=4)"]
CMD ["python", "-m", "mpr_transcoder"]

# ---------------------------------------------------------------- AWS Lambda
# The transcoder as a Lambda container image: the runtime interface client (awslambdaric)
# polls the Lambda Runtime API and calls the handler. Lambda can write only /tmp, where the
# handler works (LAMBDA_WORK_DIR). https://docs.aws.amazon.com/lambda/latest/dg/python-image.html
FROM base-ffmpeg AS lambda
# Root-owned and read-only for the function's user.
COPY --from=lambda-builder /app/.venv /app/.venv
USER 10001:10001
ENTRYPOINT ["python", "-m", "awslambdaric"]
CMD ["mpr_transcoder.lambda_handler.handler"]

# ---------------------------------------------------------------- runtime (default target)
FROM service-${SERVICE} AS runtime
# Root-owned and read-only for the service user.
COPY --from=builder /app/.venv /app/.venv
USER 10001:10001
