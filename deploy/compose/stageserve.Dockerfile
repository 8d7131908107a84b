# syntax=docker/dockerfile:1
# The stageserve image of the compose stack: a plain Python image with the repository
# pip-installed, running the `stageserve` CLI (`stageserve serve`). Built by
# deploy/compose/compose.yaml with the repository root as context; only the files
# allowed by stageserve.Dockerfile.dockerignore are sent.
#
# (The Bento image of `bentoml containerize`, used on Kubernetes, works here too: see
# README.md.)
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    BENTOML_DO_NOT_TRACK=true

WORKDIR /app

# Dependencies first, in their own layer: a code change does not reinstall them. The
# editable install maps the packages to /app/service and /app/registry_watcher, which
# the COPY below then fills.
COPY pyproject.toml README.md ./
RUN mkdir service registry_watcher \
    && touch service/__init__.py registry_watcher/__init__.py \
    && pip install -e . \
    && useradd --uid 10001 --user-group --create-home stageserve

COPY service ./service
COPY registry_watcher ./registry_watcher

USER 10001
EXPOSE 3000
ENTRYPOINT ["stageserve"]
CMD ["serve", "--host", "0.0.0.0", "--port", "3000"]
