"""`sweeper` command line. Heavy imports (torch, ray, optuna) happen inside the commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from sweeper._redact import redact as _redact
from sweeper.errors import SweeperError, Terminated

DEFAULT_STORAGE = "sqlite:///sweeps.db"


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # a log file or CI gets 100 columns (rich's default there is 80, which splits the gate table)
    width = None if stream.isatty() else 100
    return Console(stderr=stderr, highlight=False, width=width)


def _check_task_found(loaded: Any) -> None:
    """The task module can be found by the one search rule (definition folder, working
    directory, installed packages), without running any of the user's code."""
    from sweeper.errors import TaskError
    from sweeper.task import add_search_paths, check_task_ref, search_paths

    add_search_paths(search_paths(loaded.path))
    problem = check_task_ref(loaded.spec.task)
    if problem:
        raise TaskError(f"{loaded.path}: task: {problem}")


# -- commands ----------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    from sweeper.definition import load_definition

    loaded = load_definition(args.definition)
    spec = loaded.spec
    _check_task_found(loaded)
    params = spec.search.params()
    searched = [n for n, p in params.items() if p.type != "fixed"]
    print(
        f"{args.definition}: OK — study {spec.name!r}, task {spec.task}, "
        f"{spec.budget.trials} trials x {spec.budget.epochs} epochs, "
        f"searching {', '.join(searched)}; store {_redact(spec.storage)}"
    )
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from sweeper.cli._display import gate_table
    from sweeper.definition import load_definition
    from sweeper.probes import Settings, run_gate
    from sweeper.search import reference_params
    from sweeper.task import add_search_paths, load_task, search_paths

    loaded = load_definition(args.definition)
    spec = loaded.spec
    add_search_paths(search_paths(loaded.path))
    task = load_task(spec.task, spec.task_args)
    report = run_gate(
        task, params=reference_params(spec.search), settings=Settings.from_spec(spec.probes)
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        _console().print(gate_table(report.to_dict()))
    return 3 if report.verdict == "fail" else 0


def cmd_run(args: argparse.Namespace) -> int:
    from sweeper.definition import load_definition

    loaded = load_definition(args.definition)  # before any heavy import: a bad file fails fast
    from sweeper.cli._display import ConsoleProgress, params_text
    from sweeper.errors import GateFailedError
    from sweeper.orchestrator import run_study
    from sweeper.orchestrator._jobs import STORAGE_ENV  # set by `sweeper submit` for its job

    storage = args.storage or os.environ.get(STORAGE_ENV)
    if storage:
        loaded = _with_storage(loaded, storage)
    spec = loaded.spec
    console = _console()
    mode = "quiet" if args.quiet else ("plain" if args.plain else "auto")
    if mode != "quiet":
        budget = f"{args.trials} more trials" if args.trials else f"{spec.budget.trials} trials"
        console.print(
            f"study [bold]{spec.name}[/] · store {_redact(spec.storage)} · "
            f"{budget} x {spec.budget.epochs} epochs"
        )
    with ConsoleProgress(console, mode) as progress:
        try:
            out = run_study(loaded, progress=progress, address=args.address, trials=args.trials)
        except GateFailedError as e:
            console.print(f"[bold red]gate failed[/]: {e}")
            return e.exit_code
    c = out.counts
    console.print(
        f"\ndone in {out.elapsed_s:.1f}s: {c.get('complete', 0)} complete, "
        f"{c.get('pruned', 0)} pruned, {c.get('fail', 0)} failed"
        + (
            f"; probes saved ~{out.probe_seconds_saved:.1f} trial-seconds"
            if out.probe_seconds_saved
            else ""
        )
    )
    if out.stopped_reason:
        console.print(f"[yellow]stopped early:[/] {out.stopped_reason}")
    if out.best_value is not None:
        console.print(
            f"best {spec.objective.metric} = {out.best_value:.4f} (trial {out.best_number}): "
            + params_text(out.best_params or {}),
            highlight=False,
        )
    storage_arg = "" if spec.storage == DEFAULT_STORAGE else f" --storage '{_redact(spec.storage)}'"
    console.print(f"best config:  sweeper best {spec.name}{storage_arg} --format json")
    console.print(f"dashboard:    sweeper dashboard{storage_arg}")
    return 1 if out.stopped_reason and out.best_value is None else 0


def cmd_submit(args: argparse.Namespace) -> int:
    from sweeper.definition import load_definition
    from sweeper.orchestrator._jobs import record_job, submit, wait

    loaded = load_definition(args.definition)
    _check_task_found(loaded)  # the task runs on the cluster; here it must at least be found
    storage = args.storage or loaded.spec.storage
    extra = ["--trials", str(args.trials)] if args.trials else []
    job_id = submit(loaded, args.address, storage, extra)
    name = loaded.spec.name
    storage_arg = "" if storage == DEFAULT_STORAGE else f" --storage '{_redact(storage)}'"
    print(job_id)
    problem = record_job(loaded, storage, args.address, job_id)
    out = sys.stderr
    print(f"submitted study {name!r} as Ray job {job_id} to {_redact(args.address)}", file=out)
    if problem:
        print(f"note: the job is not recorded with the study ({problem})", file=out)
    print(f"follow it:  sweeper status {name}{storage_arg}", file=out)
    print(f"logs:       ray job logs {job_id} --address {_redact(args.address)} --follow", file=out)
    if not args.wait:
        return 0
    status, logs = wait(args.address, job_id)
    print(logs, end="" if logs.endswith("\n") else "\n", file=out)
    print(f"job {job_id}: {status}", file=out)
    return 0 if status == "SUCCEEDED" else 1


def _checkpoint_store(study: Any, name: str) -> dict[str, Any] | None:
    """Where the study's checkpoints live and how much they hold (folders only)."""
    from sweeper.checkpoint import Checkpoints
    from sweeper.store import attrs, user_attr_values

    location = attrs.get_study_attr(study, attrs.CHECKPOINT_STORE)
    if not location:
        return None
    kept = [str(a) for a in user_attr_values(study._storage, study._study_id, attrs.WEIGHTS)]
    try:
        size = Checkpoints(location, name).size(kept)
    except Exception:
        size = None
    return {"location": location, "weights": len(kept), "bytes": size}


def cmd_status(args: argparse.Namespace) -> int:
    from optuna.trial import TrialState

    from sweeper.cli._display import gate_table, params_text
    from sweeper.store import attrs, last_trials, load_study, state_counts, user_attr_values

    study = load_study(args.storage, args.name)
    counts = state_counts(study._storage, study._study_id)
    total = sum(counts.values())
    # read what status shows, not every trial: at 10,000 trials that is seconds
    saved = sum(map(float, user_attr_values(study._storage, study._study_id, attrs.SECONDS_SAVED)))
    recent = last_trials(study._storage, study._study_id, (TrialState.PRUNED, TrialState.FAIL), 10)
    gate = attrs.gate_of(study)
    jobs = attrs.get_study_attr(study, attrs.JOBS, []) or []
    if jobs:
        from sweeper.orchestrator._jobs import job_state

        for job in jobs[-3:]:
            job["state"] = job_state(job["address"], job["id"])
    best = None
    try:
        best = study.best_trial
    except ValueError:
        pass
    store = _checkpoint_store(study, args.name)
    if args.json:
        out = {
            "study": args.name,
            "counts": counts,
            "trials": total,
            "best_value": best.value if best else None,
            "best_params": best.params if best else None,
            "best_trial": best.number if best else None,
            "gate_verdict": gate["verdict"] if gate else None,
            "probe_seconds_saved": round(saved, 3),
            "jobs": jobs,
            "checkpoint_store": store,
        }
        print(json.dumps(out, indent=2, default=str))
        return 0
    console = _console()
    console.print(
        f"study [bold]{args.name}[/] ({_redact(args.storage)}): {total} trials — "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )
    for job in jobs[-3:]:
        console.print(f"Ray job {job['id']} on {job['address']}: {job['state']}")
    if saved:
        console.print(f"probes stopped broken trials early, saving ~{saved:.1f} trial-seconds")
    if best is not None:
        console.print(
            f"best value {best.value:.4f} (trial {best.number}): {params_text(best.params)}"
        )
    if store is not None:
        size = store["bytes"]
        console.print(
            f"checkpoints and weights: {store['weights']} trials' weights kept, "
            + (f"{size / 1e6:.1f} MB" if size is not None else "size not known")
            + f" in {store['location']}"
        )
    if gate:  # the verdict and what did not pass; `sweeper probe` shows the whole table
        flagged = [f for f in gate["findings"] if f["verdict"] in ("warn", "fail")]
        console.print(
            f"gate: {gate['verdict'].upper()} ({gate.get('seconds', 0):.1f}s, "
            f"{len(gate['findings'])} probes"
            + (f", {len(flagged)} not passed)" if flagged else ")")
        )
        if flagged:
            console.print(gate_table({**gate, "findings": flagged}, title="not passed"))
    stopped = [t for t in recent if attrs.STOPPED in t.user_attrs or attrs.ERROR in t.user_attrs]
    by_pruner = [
        t for t in stopped if str(t.user_attrs.get(attrs.STOPPED, "")).startswith(attrs.BY_PRUNER)
    ]
    if by_pruner:  # the search working as meant: one line, not one per trial
        epochs = sorted({t.last_step + 1 for t in by_pruner if t.last_step is not None})
        span = f", at epochs {epochs[0]}–{epochs[-1]}" if len(epochs) > 1 else ""
        console.print(
            f"{attrs.BY_PRUNER}{span}: trials {', '.join(str(t.number) for t in by_pruner)}"
        )
    for t in stopped:
        if t in by_pruner:
            continue
        why = t.user_attrs.get(attrs.ERROR) or t.user_attrs.get(attrs.STOPPED)
        console.print(f"trial {t.number} {t.state.name.lower()}: {why}")
    return 0


def cmd_best(args: argparse.Namespace) -> int:
    from sweeper.export import render, top_configs

    if args.weights:
        from pathlib import Path

        from sweeper.export import write_weights

        best = write_weights(args.name, args.storage, Path(args.weights), args.store)
        print(
            f"wrote the weights of trial {best.number} ({best.metric} = {best.value:.6g}) to "
            f"{args.weights}: model.load_state_dict(torch.load({args.weights!r}))",
            file=sys.stderr,
        )
    configs = top_configs(args.name, storage=args.storage, k=args.top or 1)
    print(render(configs, args.format, as_list=args.top is not None))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sweeper.export import export_trials

    n = export_trials(args.name, args.storage, Path(args.out))
    print(f"wrote {n} trials of {args.name!r} to {args.out}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sweeper.report import build_report

    html = build_report(args.name, args.storage)
    Path(args.out).write_text(html, encoding="utf-8")
    print(f"wrote {args.out} ({len(html) / 1e6:.1f} MB, opens offline)", file=sys.stderr)
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    try:
        import optuna_dashboard
    except ModuleNotFoundError:
        raise SweeperError(
            "optuna-dashboard is not installed: pip install optuna-dashboard"
        ) from None
    from optuna.artifacts import FileSystemArtifactStore

    from sweeper.store import artifact_dir, open_storage

    storage = open_storage(args.storage, heartbeat=False, create=False)
    folder = artifact_dir(args.storage, args.artifacts)
    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"optuna-dashboard on {_redact(args.storage)} (artifacts in {folder}) at "
        f"http://{args.host}:{args.port}/ (Ctrl-C to stop)",
        flush=True,
    )
    optuna_dashboard.run_server(
        storage,
        host=args.host,
        port=args.port,
        artifact_store=FileSystemArtifactStore(str(folder)),
    )
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sweeper.cli._init import write_starter

    written = write_starter(Path.cwd(), args.name, force=args.force)
    for path in written:
        print(f"wrote {path.name}")
    print(
        f"next: fill in the marked parts of {written[1].name}, then\n"
        f"  sweeper probe {written[0].name}   # the sanity gate alone\n"
        f"  sweeper run {written[0].name}     # gate, then search"
    )
    return 0


# -- plumbing ----------------------------------------------------------------------------------
def _with_storage(loaded: Any, storage: str) -> Any:
    from dataclasses import replace

    return replace(loaded, spec=loaded.spec.model_copy(update={"storage": storage}))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sweeper",
        description="Sanity-probe a PyTorch training setup, then search its hyperparameters "
        "with Optuna on Ray.",
    )
    p.add_argument("--version", action="version", version="sweeper 0.1.0")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("init", help="write a starter study definition and task module here")
    s.add_argument("name", nargs="?", default="my-study", help="study name (%(default)s)")
    s.add_argument("--force", action="store_true", help="overwrite files that exist")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser("validate", help="check a study definition; runs nothing")
    s.add_argument("definition")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("probe", help="run only the sanity gate and print its verdict")
    s.add_argument("definition")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.set_defaults(func=cmd_probe)

    s = sub.add_parser("run", help="gate, then search; re-running resumes the study")
    s.add_argument("definition")
    s.add_argument("--storage", help="override the definition's storage URL")
    s.add_argument(
        "--address", help="existing Ray cluster: auto or ray://HOST:10001 (default: local Ray)"
    )
    s.add_argument(
        "--trials",
        type=_positive,
        help="run this many more finished trials from this driver, whatever the budget says "
        "(several drivers on one study: each gets its own count)",
    )
    g = s.add_mutually_exclusive_group()
    g.add_argument("--quiet", action="store_true", help="print only the result")
    g.add_argument("--plain", action="store_true", help="log lines instead of a live view")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("submit", help="run the study as a Ray job on a cluster")
    s.add_argument("definition")
    s.add_argument(
        "--address",
        default=os.environ.get("RAY_ADDRESS"),
        required=not os.environ.get("RAY_ADDRESS"),
        help="the Ray dashboard of the cluster's head, e.g. http://HEAD:8265",
    )
    s.add_argument("--storage", help="store URL the cluster reaches (PostgreSQL)")
    s.add_argument("--trials", type=_positive, help="as for `run`")
    s.add_argument("--wait", action="store_true", help="wait for the job and print its logs")
    s.set_defaults(func=cmd_submit)

    def study_command(name: str, helptext: str, func: Any) -> argparse.ArgumentParser:
        s = sub.add_parser(name, help=helptext)
        s.add_argument("name", help="study name")
        s.add_argument("--storage", default=DEFAULT_STORAGE, help="store URL (%(default)s)")
        s.set_defaults(func=func)
        return s

    s = study_command("status", "trials done/running/pruned/failed, best so far", cmd_status)
    s.add_argument("--json", action="store_true")
    s = study_command("best", "print the best config (or the top K)", cmd_best)
    s.add_argument("--format", choices=("json", "yaml", "python", "env"), default="json")
    s.add_argument("--top", type=_positive, help="the K best configs, best first")
    s.add_argument("--weights", help="also write the best trial's weights (a state_dict) here")
    s.add_argument("--store", help="checkpoint store, if not where the run recorded it")
    s = study_command("export", "all trials as a table for pandas", cmd_export)
    s.add_argument("--out", required=True, help="results.csv or results.parquet")
    s = study_command("report", "one self-contained HTML report", cmd_report)
    s.add_argument("--out", default="report.html", help="output file (%(default)s)")

    s = sub.add_parser("dashboard", help="optuna-dashboard on the study store")
    s.add_argument("--storage", default=DEFAULT_STORAGE, help="store URL (%(default)s)")
    s.add_argument("--artifacts", help="artifact folder (default: beside the SQLite file)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    s.add_argument("--port", type=int, default=8080)
    s.set_defaults(func=cmd_dashboard)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SweeperError as e:
        print(f"error: {_redact(str(e))}", file=sys.stderr)
        return e.exit_code
    except Terminated as e:
        print(
            "stopped by SIGTERM: running trials were failed and re-queued, finished trials are "
            "kept; run the same command to resume",
            file=sys.stderr,
        )
        return e.exit_code
    except KeyboardInterrupt:
        print(
            "interrupted; finished trials are kept, run the same command to resume", file=sys.stderr
        )
        return 130
