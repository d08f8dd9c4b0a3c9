"""One module per `sweeper` command, each with `add_parser(sub)` and `run(args) -> exit code`.
Heavy imports (torch, ray, optuna) happen inside `run`, so `validate`, `status`, `best` and
`export` answer without them."""

from sweeper.cli.commands import (
    best,
    dashboard,
    export,
    init,
    probe,
    report,
    run,
    status,
    submit,
    validate,
)

# in the order `sweeper --help` lists them
COMMANDS = (init, validate, probe, run, submit, status, best, export, report, dashboard)

__all__ = ["COMMANDS"]
