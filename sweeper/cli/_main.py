"""`sweeper` command line: the parser, made from the commands' own `add_parser`
(sweeper/cli/commands/, one module per command), and `main`, which turns errors into exit
codes and messages that name the cause and the fix."""

from __future__ import annotations

import argparse
import os
import sys

from sweeper._redact import redact
from sweeper.cli.commands import COMMANDS
from sweeper.errors import SweeperError, Terminated


def build_parser() -> argparse.ArgumentParser:
    """The `sweeper` parser with every command's subparser."""
    p = argparse.ArgumentParser(
        prog="sweeper",
        description="Sanity-probe a PyTorch training setup, then search its hyperparameters "
        "with Optuna on Ray.",
    )
    p.add_argument("--version", action="version", version="sweeper 0.1.0")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code (2 bad input, 3 gate failed, 130 interrupted, ...)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SweeperError as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
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
    except BrokenPipeError:  # the reader went away (`sweeper best NAME | head`): no traceback
        try:  # and none at exit either, when Python flushes stdout into the closed pipe
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # stdout is not a file (captured)
            pass
        return 141  # 128 + SIGPIPE, as a shell reports a command its pipe ended
