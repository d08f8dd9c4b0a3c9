"""The image is linted here (no Docker engine on CI): hadolint passes, Ray versions agree."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    out = subprocess.run(
        [str(hadolint), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_uses_the_pinned_ray_and_a_non_root_user() -> None:
    docker = (ROOT / "Dockerfile").read_text()
    pinned = re.search(r"^ray==([\d.]+)$", (ROOT / "constraints.txt").read_text(), re.M)
    base = re.search(r"^FROM rayproject/ray:([\d.]+)-py\d+-gpu$", docker, re.M)
    assert pinned and base, "constraints.txt pins ray exactly and the image is Ray's GPU image"
    assert base.group(1) == pinned.group(1)
    users = re.findall(r"^USER (\S+)$", docker, re.M)
    assert users and users[-1] not in ("root", "0")
