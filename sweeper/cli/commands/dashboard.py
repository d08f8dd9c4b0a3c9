"""`sweeper dashboard`: optuna-dashboard on the study store, with the gate's artifacts."""

from __future__ import annotations

import argparse
from typing import Any

from sweeper._redact import redact
from sweeper.cli._common import DEFAULT_STORAGE
from sweeper.errors import SweeperError


def add_parser(sub: Any) -> None:
    """Add the command's subparser to `sub`, with its arguments."""
    s = sub.add_parser("dashboard", help="optuna-dashboard on the study store")
    s.add_argument("--storage", default=DEFAULT_STORAGE, help="store URL (%(default)s)")
    s.add_argument("--artifacts", help="artifact folder (default: beside the SQLite file)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (%(default)s)")
    s.add_argument("--port", type=int, default=8080)
    s.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the command with the parsed `args`; its exit code."""
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
        f"optuna-dashboard on {redact(args.storage)} (artifacts in {folder}) at "
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
