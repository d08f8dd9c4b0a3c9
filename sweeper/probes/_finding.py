"""A probe's finding and a report of several. Plain data: no torch, so the CLI can show them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Verdict = Literal["pass", "skip", "warn", "fail"]  # skip: the probe could not apply here
_RANK = {"pass": 0, "skip": 0, "warn": 1, "fail": 2}


@dataclass
class Finding:
    """One probe's result: what it measured, what it expected, and what to fix."""

    probe: str
    verdict: Verdict
    measured: Any
    expected: Any
    hint: str = ""
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)
    cause: str = ""  # a failure that follows from another: that probe (the root cause)

    @property
    def hint_text(self) -> str:
        """The hint as shown, led by the failure it follows from."""
        if self.cause:
            return f"follows from {self.cause} (fix that first); {self.hint}"
        return self.hint

    def to_dict(self) -> dict[str, Any]:
        """The finding as plain data (JSON, the store)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        """A finding from `to_dict`'s data."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Report:
    """Findings of one gate run or one trial, with the worst verdict as the overall one."""

    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    # a study gate's report also keeps what it was made from and its plots' data
    reference_params: dict[str, Any] = field(default_factory=dict)
    key: str = ""  # what the gate ran on (orchestrator: unchanged code and settings reuse it)
    init_profiles: dict[str, Any] = field(default_factory=dict)
    # a LightningModule's logged metric names, and whether they are all it logs (_logged.py)
    logged: tuple[list[str], bool] | None = None

    @property
    def verdict(self) -> Verdict:
        """The worst verdict among the findings: fail, warn or pass."""
        worst: Verdict = "pass"
        for f in self.findings:
            if _RANK[f.verdict] > _RANK[worst]:
                worst = f.verdict
        return worst

    @property
    def failures(self) -> list[Finding]:
        """The findings that failed."""
        return [f for f in self.findings if f.verdict == "fail"]

    @property
    def root_causes(self) -> list[Finding]:
        """The failures no earlier failure explains, in the order the probes ran: what to fix
        first. The other failures name theirs in `cause`."""
        return [f for f in self.failures if not f.cause]

    @property
    def root_cause(self) -> Finding | None:
        """The failure that explains the others, named first."""
        roots = self.root_causes
        return roots[0] if roots else None

    @property
    def warnings(self) -> list[Finding]:
        """The findings that warned."""
        return [f for f in self.findings if f.verdict == "warn"]

    def __getitem__(self, probe: str) -> Finding:
        for f in self.findings:
            if f.probe == probe:
                return f
        raise KeyError(
            f"no finding from probe {probe!r}; probes run: {[f.probe for f in self.findings]}"
        )

    def __contains__(self, probe: object) -> bool:
        return any(f.probe == probe for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (JSON, the store)."""
        out: dict[str, Any] = {
            "verdict": self.verdict,
            "root_causes": [f.probe for f in self.root_causes],
            "seconds": round(self.seconds, 3),
            "findings": [f.to_dict() for f in self.findings],
        }
        for name in ("reference_params", "key", "init_profiles"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.logged is not None:
            out["logged"] = {"names": self.logged[0], "complete": self.logged[1]}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        """A report from `to_dict`'s data (a stored gate report)."""
        return cls(
            [Finding.from_dict(f) for f in d.get("findings", [])],
            d.get("seconds", 0.0),
            dict(d.get("reference_params") or {}),
            str(d.get("key") or ""),
            dict(d.get("init_profiles") or {}),
            (
                (list(d["logged"]["names"]), bool(d["logged"]["complete"]))
                if isinstance(d.get("logged"), dict)
                else None
            ),
        )

    def table(self) -> GateTable:
        """The report as every renderer shows it (see `GateTable`)."""
        return GateTable.of(self)


@dataclass(frozen=True)
class GateRow:
    """One probe's line in a gate table, as text: verdict, measured, expected, and the hint
    (led by the failure it follows from)."""

    probe: str
    verdict: Verdict
    measured: str
    expected: str
    hint: str


@dataclass(frozen=True)
class GateTable:
    """The one table model of a gate report, rendered by the CLI (rich), the dashboard note
    (Markdown) and the HTML report: a heading (verdict, seconds, reference params), the root
    causes with what to fix, and a row per probe."""

    verdict: Verdict
    seconds: float
    reference_params: dict[str, Any]
    roots: list[tuple[str, str]]  # (probe, hint) of each root cause, in the order they ran
    rows: list[GateRow]

    @classmethod
    def of(cls, report: Report) -> GateTable:
        """The table of `report`."""
        rows = [
            GateRow(f.probe, f.verdict, fmt(f.measured), fmt(f.expected), f.hint_text)
            for f in report.findings
        ]
        roots = [(f.probe, f.hint) for f in report.root_causes]
        return cls(report.verdict, report.seconds, dict(report.reference_params), roots, rows)

    @property
    def root_line(self) -> str:
        """`Root cause: probe: what to fix` (or several), or "" when nothing failed."""
        if not self.roots:
            return ""
        if len(self.roots) == 1:
            return f"Root cause: {self.roots[0][0]}: {self.roots[0][1]}"
        return "Root causes: " + "; ".join(f"{p}: {h}" for p, h in self.roots)


def fmt(value: Any, digits: int = 3) -> str:
    """Short human form of a measured or expected value: `digits` significant digits, a
    dict as "name value, name value" (names as given: a module's name as PyTorch spells
    it), no Python reprs."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, dict):
        return ", ".join(
            f"{k} {fmt(v, digits) if v not in (None, [], ()) else 'none'}" for k, v in value.items()
        )
    if isinstance(value, (list, tuple)) and len(value) > 6:
        return ", ".join(fmt(v, digits) for v in value[:6]) + ", …"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v, digits) for v in value)
    return "" if value is None else str(value)
