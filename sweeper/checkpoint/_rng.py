"""The random number generators a resumed trial must continue from."""

from __future__ import annotations

import random
from typing import Any


def rng_state() -> dict[str, Any]:
    """Python's, NumPy's and torch's random states (CUDA's too), to resume a trial exactly."""
    import numpy as np
    import torch

    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_pos": random.getstate()[2],
        "numpy": _numpy_state(np),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _numpy_state(np: Any) -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"name": name, "keys": keys.tolist(), "pos": pos, "has": has_gauss, "g": gauss}


def restore_rng(state: dict[str, Any]) -> None:
    """Restore `rng_state`'s states."""
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    n = state["numpy"]
    np.random.set_state(
        (n["name"], np.array(n["keys"], dtype=np.uint32), n["pos"], n["has"], n["g"])
    )
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
