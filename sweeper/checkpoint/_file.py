"""One checkpoint file: a header (magic, payload length, SHA-256) and torch.save's bytes.

The header makes a torn write visible whatever store holds the file: a short file, a file cut
inside the payload or a flipped byte all fail the length or checksum test, never load as a
model with half its weights.
"""

from __future__ import annotations

import hashlib
import io
import struct
from typing import Any

MAGIC = b"SWEEPCK1"
_HEADER = struct.Struct(">8sQ32s")  # magic, payload length, sha256 of the payload


class CorruptCheckpoint(Exception):  # noqa: N818 (a condition the reader handles, not a bug)
    """The bytes are not a whole sweeper checkpoint (truncated, torn or foreign)."""


def pack(obj: Any) -> bytes:
    """A checkpoint's bytes with a header and checksum: a torn or altered file is found."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    return _HEADER.pack(MAGIC, len(payload), hashlib.sha256(payload).digest()) + payload


def unpack(blob: bytes, map_location: Any = "cpu", weights_only: bool = True) -> Any:
    """The object `pack` wrote. `weights_only=False` for a fit task's own state (written by
    the user's code into the study's own store), which may hold any picklable object."""
    import torch

    if len(blob) < _HEADER.size:
        raise CorruptCheckpoint(f"{len(blob)} bytes, shorter than a checkpoint's header")
    magic, length, digest = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise CorruptCheckpoint("not a sweeper checkpoint (wrong magic bytes)")
    payload = blob[_HEADER.size :]
    if len(payload) != length:
        raise CorruptCheckpoint(f"truncated: {len(payload)} of {length} bytes")
    if hashlib.sha256(payload).digest() != digest:
        raise CorruptCheckpoint("checksum mismatch (a torn write or a damaged file)")
    return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=weights_only)
