"""Keep passwords in storage URLs out of every message (no heavy imports here)."""

from __future__ import annotations

import re

_PASSWORD = re.compile(r"(://[^:/@\s]+):[^@\s]*@")


def redact(text: str) -> str:
    """`postgresql://u:secret@h/db` -> `postgresql://u:***@h/db`, anywhere in `text`."""
    return _PASSWORD.sub(r"\1:***@", text)
