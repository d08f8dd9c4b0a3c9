"""The best trial's trained weights, for the user's own training code.

>>> model = sweeper.load_best_model("digits-mlp", storage="sqlite:///sweeps.db")
>>> model.train()   # fine-tune on, or evaluate as it is (it comes in eval mode)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sweeper.errors import StoreError, SweeperError, TaskError
from sweeper.export._best import DEFAULT_STORAGE, BestConfig, best_config


def best_weights(
    name: str, storage: str = DEFAULT_STORAGE, store: str | None = None, pick: str | None = None
) -> tuple[BestConfig, dict[str, Any]]:
    """The best trial and its final weights (a state_dict on the CPU). `store`: where the
    checkpoints live, if not where the run recorded (say, a shared folder mounted elsewhere).
    `pick`: for several objectives, which front member (see `best_config`)."""
    from sweeper.checkpoint import Checkpoints, CorruptCheckpoint, unpack
    from sweeper.store import attrs, load_study

    best = best_config(name, storage, pick)
    artifact = best.user_attrs.get(attrs.WEIGHTS)
    if not artifact:
        ranked = (
            f" (with several objectives, keep_best keeps the best trials on the first, "
            f"{best.metric})"
            if best.values
            else ""
        )
        raise StoreError(
            f"trial {best.number}, the {'picked' if best.values else 'best'} of {name!r}, has "
            "no kept weights: the study ran with checkpoint.keep_best: 0, or before sweeper "
            f"kept weights{ranked}. Re-run it with a larger keep_best, or train the config "
            "yourself (`sweeper best` prints it)"
        )
    study = load_study(storage, name)
    location = store or attrs.get_study_attr(study, attrs.CHECKPOINT_STORE)
    if not location:
        raise StoreError(f"study {name!r} records no checkpoint store; pass store=")
    try:
        blob = Checkpoints(location, name).read(artifact)
    except Exception as e:
        raise StoreError(
            f"the weights of trial {best.number} ({artifact}) could not be read from "
            f"{location} ({type(e).__name__}); if the folder moved, pass its new place "
            "(store=... or --store)"
        ) from None
    try:
        return best, unpack(blob)
    except CorruptCheckpoint as e:
        raise StoreError(
            f"the weights of trial {best.number} in {location} are damaged: {e}"
        ) from None


def load_best_model(
    name: str,
    storage: str = DEFAULT_STORAGE,
    device: str = "cpu",
    store: str | None = None,
    pick: str | None = None,
) -> Any:
    """The study's task model, built with the best trial's params and loaded with the weights
    that trial ended with, in eval mode on `device`. Its validation metric is the one the
    trial reported. The task module must be importable from here (as for `sweeper run`).
    `pick`: for a study with several objectives, the Pareto front's member to load: the one
    best on the objective it names, or "knee" (default: the first objective's best)."""
    import torch
    import yaml

    from sweeper.store import attrs, load_study
    from sweeper.task import add_search_paths, load_task
    from sweeper.training import build_model

    best, state = best_weights(name, storage, store, pick)
    definition = attrs.get_study_attr(load_study(storage, name), attrs.DEFINITION) or ""
    spec = yaml.safe_load(definition) or {}
    add_search_paths([str(Path.cwd())])
    task = load_task(spec["task"], spec.get("task_args") or {})
    if task.build_model is None:
        raise TaskError(
            f"task {spec['task']} trains itself (fit) and has no build_model for sweeper to "
            f"build: write the weights with `sweeper best {name} --weights best.pt` and load "
            "them into your model with model.load_state_dict(torch.load('best.pt'))"
        )
    # the user's model as their task builds it: no hook of sweeper's left on it
    model = build_model(task, {**best.params, "init": "none"}, torch.device(device), readout=False)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise SweeperError(
            f"the kept weights of trial {best.number} do not fit the task's model as it is "
            f"built now (was the model changed since the study ran?): {str(e).splitlines()[0]}"
        ) from None
    return model.eval()


def write_weights(
    name: str, storage: str, path: Path, store: str | None = None, pick: str | None = None
) -> BestConfig:
    """The best (or picked) trial's weights as a plain state_dict file (torch.load gives it
    back)."""
    import torch

    best, state = best_weights(name, storage, store, pick)
    torch.save(state, path)
    return best
