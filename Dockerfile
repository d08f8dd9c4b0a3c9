# One image for everything sweeper runs on a cluster: the driver (`sweeper run` / a Ray job's
# entrypoint), the Ray head node and the Ray worker nodes.
#
# Base: Ray's own GPU image, with the same Ray version constraints.txt pins (a test
# checks they agree), CUDA, Python 3.11, and the non-root user `ray` (uid 1000, group users 100).
FROM rayproject/ray:2.60.0-py311-gpu

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /home/ray/sweeper
COPY --chown=1000:100 pyproject.toml README.md constraints.txt ./
COPY --chown=1000:100 sweeper ./sweeper
COPY --chown=1000:100 studies ./studies

# On Linux, PyPI's torch==2.13.0 is the CUDA build, so trials use the node's GPUs.
# postgres: the cluster's study store; dashboard: `sweeper dashboard` in the same image.
# torch and ray at the tested versions (constraints.txt).
USER 1000
# hadolint ignore=DL3013
RUN pip install --no-cache-dir -c constraints.txt ".[postgres,dashboard]" \
    && sweeper --version

# 6379: Ray GCS; 8265: Ray dashboard and job submission; 8080: `sweeper dashboard`.
EXPOSE 6379 8265 8080
CMD ["sweeper", "--help"]
