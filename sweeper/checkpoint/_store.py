"""Where checkpoints live: an Optuna artifact store named by a plain location.

A folder (local, or a filesystem every node shares) by default; `s3://bucket/prefix` and
`gs://bucket/prefix` use Optuna's Boto3 and GCS artifact stores, with credentials from the
environment (never from the definition). Writes to a folder are atomic (a temporary file, then
a rename), so a reader sees the old file or the whole new one.
"""

from __future__ import annotations

import io
import logging
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from sweeper.errors import SweeperError

log = logging.getLogger("sweeper")
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_NS = uuid.UUID("5a1d0c3e-8f0b-4c55-9a6e-2f1d5b7c9e01")


def checkpoint_id(study: str, trial: int, epoch: int) -> str:
    """A trial's checkpoint after `epoch` epochs. Deterministic, so what a killed run wrote
    can be found and removed without a record of it."""
    return f"ckpt~{study}~{trial}~{epoch}"


def weights_id(study: str, trial: int) -> str:
    """A finished trial's final weights. Hex with dashes: optuna-dashboard serves artifacts
    by ids of that form."""
    return str(uuid.uuid5(_NS, f"{study}/{trial}/weights"))


class _AtomicFolder:
    """Optuna's FileSystemArtifactStore interface, with atomic writes and listing."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def _path(self, artifact_id: str) -> Path:
        if not re.fullmatch(r"[A-Za-z0-9_.~-]+", artifact_id):
            raise ValueError(f"invalid artifact id {artifact_id!r}")
        return self.base / artifact_id

    def open_reader(self, artifact_id: str) -> BinaryIO:
        from optuna.artifacts.exceptions import ArtifactNotFound

        try:
            return open(self._path(artifact_id), "rb")
        except FileNotFoundError as e:
            raise ArtifactNotFound(f"no artifact {artifact_id} in {self.base}") from e

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.base)
        try:
            with os.fdopen(fd, "wb") as f:
                while chunk := content_body.read(1 << 20):
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual mode
            os.replace(tmp, self._path(artifact_id))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def remove(self, artifact_id: str) -> None:
        from optuna.artifacts.exceptions import ArtifactNotFound

        try:
            os.remove(self._path(artifact_id))
        except FileNotFoundError as e:
            raise ArtifactNotFound(f"no artifact {artifact_id} in {self.base}") from e


class _Prefixed:
    """An object store whose keys all start with a prefix (s3://bucket/prefix/...)."""

    def __init__(self, store: Any, prefix: str) -> None:
        self.store, self.prefix = store, prefix.strip("/") + "/" if prefix.strip("/") else ""

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self.store.open_reader(self.prefix + artifact_id)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.store.write(self.prefix + artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        self.store.remove(self.prefix + artifact_id)


def open_store(location: str) -> Any:
    """The artifact store at `location`: a folder, `s3://bucket[/prefix]`, `gs://bucket[/prefix]`."""
    m = re.match(r"^(s3|gs)://([^/]+)/?(.*)$", location)
    if m is None:
        return _AtomicFolder(Path(location))
    scheme, bucket, prefix = m.groups()
    try:
        if scheme == "s3":
            from optuna.artifacts import Boto3ArtifactStore

            store: Any = Boto3ArtifactStore(bucket)
        else:
            from optuna.artifacts import GCSArtifactStore

            store = GCSArtifactStore(bucket)
    except ImportError:
        package = "boto3" if scheme == "s3" else "google-cloud-storage"
        raise SweeperError(
            f"checkpoint.store {location} needs the {package} package on the driver and every "
            f"worker: pip install {package}"
        ) from None
    return _Prefixed(store, prefix)


def describe(location: str) -> str:
    """A location as the user should read it: a URL, or an absolute folder."""
    return location if re.match(r"^(s3|gs)://", location) else str(Path(location).resolve())


class Checkpoints:
    """One study's checkpoints and weights in its artifact store."""

    def __init__(self, location: str, study: str) -> None:
        self.location = location
        self.study = study
        self.store = open_store(location)

    @property
    def folder(self) -> Path | None:
        """The folder of a local store (None for S3/GCS)."""
        return self.store.base if isinstance(self.store, _AtomicFolder) else None

    def write(self, artifact_id: str, blob: bytes) -> None:
        """Store `blob` under `artifact_id` (atomically in a folder)."""
        self.store.write(artifact_id, io.BytesIO(blob))

    def read(self, artifact_id: str) -> bytes:
        """The bytes stored under `artifact_id`."""
        with self.store.open_reader(artifact_id) as f:
            return f.read()

    def remove(self, artifact_id: str) -> None:
        """Remove if present (a second remove, or one of a never-finished write, is fine)."""
        from optuna.artifacts.exceptions import ArtifactNotFound

        try:
            self.store.remove(artifact_id)
        except (ArtifactNotFound, FileNotFoundError):
            pass
        except Exception as e:  # a file left behind is not worth stopping a study for
            log.warning("could not remove %s from %s: %s", artifact_id, self.location, e)

    def trial_files(self, trial: int) -> list[str]:
        """A trial's checkpoint ids in a folder store (other stores: none listed)."""
        if self.folder is None or not self.folder.is_dir():
            return []
        prefix = checkpoint_id(self.study, trial, 0)[:-1]
        return [p.name for p in self.folder.iterdir() if p.name.startswith(prefix)]

    def size(self, ids: list[str]) -> int | None:
        """Bytes held by the study's checkpoints and the given weights (folder stores only)."""
        if self.folder is None:
            return None
        if not self.folder.is_dir():
            return 0
        prefix = f"ckpt~{self.study}~"
        wanted = set(ids)
        return sum(
            p.stat().st_size
            for p in self.folder.iterdir()
            if p.name.startswith(prefix) or p.name in wanted
        )
