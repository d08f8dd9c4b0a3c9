"""A runner process's last words: a watchdog for user code that stops making progress, and a
dump of every thread when the process dies, both written where the driver reads them.

Progress is a beat: an optimizer step (a global step hook, so sweeper's loop, an own `fit`,
Lightning and the HF Trainer all count), a forward of a watched model, `trial.report`,
`trial.step`, a gate probe starting or ending. A beat is one clock read and two stores, no
system call. The watchdog thread sleeps until the silence could first exceed its bound,
so it costs nothing while all is well. The bound is derived from what was measured: `factor`
times the longest gap between two beats of the current work (its first, the warm-up of a
fresh model, left out), never below `floor_s`, which is also the bound before anything was
measured (`fixed_s` overrides both). Past it, the stacks of every thread go to the dump
file with the user's innermost frame named, and the process ends itself (SIGKILL) with its
children: a thread stuck in a forward, a collective or a DataLoader cannot be stopped any
other way. Waiting on the driver (between epochs) is not silence.

A process that dies on its own leaves the same file: faulthandler writes every thread's stack
on SIGSEGV, SIGFPE, SIGABRT, SIGBUS and SIGILL, and `os._exit` called from the user's code
writes one before it exits. The driver reads it (`read_dump`) to name the crash.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import sysconfig
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

HANG = "sweeper-watchdog: hang"
EXIT = "sweeper-watchdog: os._exit"
PART = "sweeper-watchdog: in "

_PACKAGE = str(Path(__file__).resolve().parent)


def _skipped() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {_PACKAGE, paths["stdlib"], paths["purelib"], paths["platlib"]}
    return tuple(sorted(str(Path(p)) for p in roots))


def is_user_file(name: str) -> bool:
    """Whether a frame's file is the user's code: not sweeper, not a library, not Python's
    own, not generated (`<string>`)."""
    return not name.startswith(_skipped()) and not name.startswith("<")


def user_frame(frame: Any) -> str:
    """The innermost frame of the user's code in the stack ending at `frame` (file:line in
    function), or "" when the stack is sweeper's, the libraries' and Python's only."""
    while frame is not None:
        name = frame.f_code.co_filename
        if is_user_file(name):
            return f"{name}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back
    return ""


def thread_frame(thread: threading.Thread | None) -> str:
    """Where `thread` is now in the user's code, or ""."""
    if thread is None or thread.ident is None:
        return ""
    return user_frame(sys._current_frames().get(thread.ident))


def all_stacks() -> tuple[str, str]:
    """Every thread's stack as text (most recent call last) and the user's innermost frame:
    that of the thread doing the work when one is in the user's code, else any thread's."""
    names = {t.ident: t.name for t in threading.enumerate()}
    lines: list[str] = []
    where = ""
    frames = sys._current_frames()
    me = threading.get_ident()
    # the work's threads first: the trial's and the gate's, then the main thread, then others
    order = sorted(
        frames, key=lambda i: (not str(names.get(i, "")).startswith("sweeper-"), i != me, i)
    )
    for ident in order:
        if ident == me and names.get(ident) == _THREAD_NAME:
            continue  # the watchdog itself
        frame = frames[ident]
        lines.append(f"Thread {names.get(ident, hex(ident))} (most recent call last):")
        lines.extend(s.rstrip("\n") for s in traceback.format_stack(frame))
        where = where or user_frame(frame)
    return "\n".join(lines), where


_THREAD_NAME = "sweeper-watchdog"


@dataclass
class Dump:
    """What a dead runner process left: `kind` ("hang", "exit", "signal"), the user's frame,
    a one-line account, and the path of the whole dump."""

    kind: str
    where: str
    summary: str
    path: Path
    part: str = ""  # the part of the work it died in (a gate probe), when the work said

    def describe(self) -> str:
        """One line: what happened and where in the user's code."""
        at = f" at {self.where}" if self.where else ""
        return f"{self.summary}{at}"


class Watchdog:
    """Ends this process when the work it runs makes no progress for longer than its bound,
    after writing every thread's stack to `path`; also the file faulthandler and `os._exit`
    write to. One per runner process (`install`)."""

    def __init__(
        self,
        path: Path,
        floor_s: float = 60.0,
        factor: float = 20.0,
        fixed_s: float | None = None,
        on_hang: Any = None,
        faults: bool = True,
    ) -> None:
        """`on_hang(dump)`: what ends the process once the dump is written (default: SIGKILL
        of the process and its children, for the driver to read the dump). `faults`: also
        the file faulthandler writes to when the process dies of a signal."""
        self.on_hang = on_hang
        self.closed = False
        self.path = path
        self.floor_s = floor_s
        self.factor = factor
        self.fixed_s = fixed_s
        self.what = ""  # the work running now ("" = none: nothing to watch)
        self.part = ""  # its current part (a gate probe), named in a dump
        self.last = 0.0
        self.longest = 0.0
        self.warming = False
        self.paused = True
        self._wake = threading.Event()
        self._file: TextIO | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "w", encoding="utf-8")  # kept open: faulthandler writes to it
        if faults:
            faulthandler.enable(file=self._file, all_threads=True)
        self._thread = threading.Thread(target=self._run, name=_THREAD_NAME, daemon=True)
        self._thread.start()

    # -- from the work (any thread) ----------------------------------------------------------
    def arm(self, what: str) -> None:
        """Work begins (the gate, trial N): measure its own gaps from now."""
        self.what, self.longest, self.last, self.paused = what, 0.0, time.monotonic(), False
        self.warming = True  # the first silence (build, first forward, compile) is not a step
        self.doing("")
        self._wake.set()

    def doing(self, part: str) -> None:
        """The work enters `part` (a gate probe; "" for none). It heads the dump file, where
        a crash's stacks follow it, so the driver names the part the process died in: a
        probe's name from the driver's last poll may be several probes old. One short write,
        no fsync (the kernel keeps it when the process dies); once per part, never per step."""
        self.part = part
        self.write(f"{PART}{part}" if part else "", sync=False)

    def beat(self) -> None:
        """Progress: the silence ends here."""
        now = time.monotonic()
        if not self.paused:
            if self.warming:
                self.warming = False
            elif now - self.last > self.longest:
                self.longest = now - self.last
        self.last, self.paused = now, False

    def pause(self) -> None:
        """The work waits on the driver (not silence) until the next beat."""
        self.paused = True

    def disarm(self) -> None:
        """No work runs."""
        self.what, self.paused = "", True

    def bound(self) -> float:
        """Seconds of silence allowed now."""
        if self.fixed_s is not None:
            return self.fixed_s
        return max(self.floor_s, self.factor * self.longest)

    def explain(self) -> str:
        """How the bound was reached, for the message."""
        if self.fixed_s is not None:
            return f"probes.watchdog_s = {self.fixed_s:g}"
        measured = self.factor * self.longest
        if measured > self.floor_s:
            return (
                f"{self.factor:g} x the longest gap between steps so far, {self.longest:.2f} s; "
                "probes.watchdog_s sets it"
            )
        return f"the floor probes.watchdog_floor_s = {self.floor_s:g}; probes.watchdog_s sets it"

    # -- the watchdog's thread ---------------------------------------------------------------
    def close(self) -> None:
        """Stop watching for good (the thread ends; the dump file is closed)."""
        self.closed = True
        self.disarm()
        self._wake.set()

    def _run(self) -> None:
        while not self.closed:
            if not self.what or self.paused:
                self._wake.wait(timeout=5.0)  # woken by arm; the timeout only re-checks
                self._wake.clear()
                continue
            silent = time.monotonic() - self.last
            bound = self.bound()
            if silent < bound or self.closed:
                self._wake.wait(timeout=bound - silent + 0.05)
                self._wake.clear()
                continue
            self._fire(silent, bound)
            return

    def _fire(self, silent: float, bound: float) -> None:
        stacks, where = all_stacks()
        head = [
            HANG,
            f"what: {self.what}",
            f"where: {where}",
            f"part: {self.part}",
            f"summary: {self.what} made no progress for {silent:.0f} s (no step, forward or "
            f"report; bound {bound:.0f} s: {self.explain()})",
            "",
            stacks,
        ]
        self.write("\n".join(head))
        if self.on_hang is not None:
            dump = parse_dump("\n".join(head), self.path)
            self.on_hang(dump)
        end_process_tree()

    def write(self, text: str, sync: bool = True) -> None:
        """Replace the file's content with `text` ("": empty it), flushed to disk with
        `sync`. faulthandler writes after it: the descriptor's offset is the text's end."""
        if self._file is None:
            return
        try:
            self._file.seek(0)
            self._file.truncate()
            if text:
                self._file.write(text + "\n")
            self._file.flush()
            if sync:
                os.fsync(self._file.fileno())
        except (OSError, ValueError):
            pass


def end_process_tree() -> None:
    """SIGKILL this process's children (DataLoader workers, which hold its sockets open, so
    Ray would never see it die), then this process."""
    try:
        import psutil

        for child in psutil.Process().children(recursive=True):
            try:
                child.kill()
            except psutil.Error:
                pass
    except Exception:  # psutil missing or /proc unreadable: the process itself still ends
        pass
    os.kill(os.getpid(), signal.SIGKILL)


_WATCHDOG: Watchdog | None = None


def current() -> Watchdog | None:
    """This process's watchdog, if installed."""
    return _WATCHDOG


def beat() -> None:
    """Progress, for whatever watchdog this process has (none: nothing)."""
    w = _WATCHDOG
    if w is not None:
        w.beat()


def pause() -> None:
    """The work waits on the driver, for whatever watchdog this process has."""
    w = _WATCHDOG
    if w is not None:
        w.pause()


def install(
    folder: Path,
    key: str,
    floor_s: float,
    factor: float,
    fixed_s: float | None,
    on_hang: Any = None,
) -> Watchdog:
    """The process's watchdog, dumping to `folder/runner-<key>-<pid>.txt`: faulthandler on,
    `os._exit` wrapped, a step hook on every optimizer."""
    global _WATCHDOG
    if _WATCHDOG is not None:
        return _WATCHDOG
    path = Path(folder) / f"runner-{key}-{os.getpid()}.txt"
    _WATCHDOG = Watchdog(path, floor_s, factor, fixed_s, on_hang)
    _wrap_exit(_WATCHDOG)
    try:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        register_optimizer_step_post_hook(lambda *_: beat())
    except ImportError:  # an older torch: steps beat through trial.step/report only
        pass
    return _WATCHDOG


def _wrap_exit(w: Watchdog) -> None:
    """`os._exit` from the user's code writes every thread's stack first (Ray's own calls
    from its frames write nothing)."""
    real = os._exit
    if getattr(real, "_sweeper", False):
        return

    def _exit(code: int) -> Any:
        caller = user_frame(sys._getframe(1))
        if caller:
            stacks, _ = all_stacks()
            w.write(
                "\n".join(
                    [
                        EXIT,
                        f"what: {w.what or 'the runner'}",
                        f"where: {caller}",
                        f"part: {w.part}",
                        f"summary: the task's code called os._exit({code})",
                        "",
                        stacks,
                    ]
                )
            )
        real(code)

    _exit._sweeper = True  # type: ignore[attr-defined]
    os._exit = _exit  # type: ignore[assignment]


def read_dump(folder: Path | None, key: str) -> Dump | None:
    """The newest dump a dead runner `key` left in `folder` (removed once read, so it is
    told once), or None."""
    if folder is None:
        return None
    try:
        files = sorted(
            (p for p in Path(folder).glob(f"runner-{key}-*.txt") if p.stat().st_size > 0),
            key=lambda p: p.stat().st_mtime,
        )
    except OSError:
        return None
    for path in reversed(files):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        dump = parse_dump(text, path)
        if dump is None:
            continue
        kept = path.with_name(f"{dump.kind}-{path.name}")
        try:
            path.rename(kept)
            dump.path = kept
        except OSError:
            pass
        return dump
    return None


def parse_dump(text: str, path: Path) -> Dump | None:
    """A Dump from a file's text: sweeper's own header (hang, os._exit) or faulthandler's
    ("Fatal Python error: Segmentation fault" then each thread, most recent call first)."""
    lines = text.splitlines()
    if not lines:
        return None
    if lines[0] in (HANG, EXIT):
        fields = dict(ln.split(": ", 1) for ln in lines[1:6] if ": " in ln)
        kind = "hang" if lines[0] == HANG else "exit"
        summary = fields.get("summary", lines[0])
        return Dump(kind, fields.get("where", ""), summary, path, fields.get("part", ""))
    fatal = next((ln for ln in lines if ln.startswith("Fatal Python error:")), None)
    if fatal is None:
        return None
    cause = fatal.partition(":")[2].strip()
    part = lines[0][len(PART) :] if lines[0].startswith(PART) else ""
    return Dump("signal", _faulthandler_frame(lines), f"the process died: {cause}", path, part)


def _faulthandler_frame(lines: list[str]) -> str:
    """The user's innermost frame in faulthandler's text: the current thread's first, then
    any thread's ("  File "x.py", line 3 in f", most recent call first)."""
    blocks: list[tuple[bool, list[str]]] = []
    for ln in lines:
        if ln.startswith(("Current thread", "Thread 0x")):
            blocks.append((ln.startswith("Current thread"), []))
        elif ln.startswith('  File "') and blocks:
            blocks[-1][1].append(ln)
    blocks.sort(key=lambda b: not b[0])
    for _, frames in blocks:
        for ln in frames:
            name, _, rest = ln[len('  File "') :].partition('", line ')
            if is_user_file(name):
                lineno, _, func = rest.partition(" in ")
                return f"{name}:{lineno.strip()} in {func.strip()}"
    return ""
