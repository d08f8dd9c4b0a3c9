"""11. Gate plots: sweeper's own SVG writer (`report/_svg.py`, ~100 lines) against matplotlib,
the library that could replace it (plotly writes SVG only through kaleido, which downloads a
browser at run time). The same two plots the gate publishes (tiny-set overfit curve, lr range
test on a log axis), alternated, median of the repeats; imports timed in a fresh process. The
matplotlib row needs `pip install matplotlib` (not a sweeper dependency)."""

from __future__ import annotations

import io
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CURVE = [(i, 2.3 * math.exp(-i / 40) + 0.01) for i in range(300)]
LRS = [(1e-6 * 1e7 ** (i / 100), 2.3 - 0.5 * math.sin(i / 30)) for i in range(100)]
SVG_PY = Path(__file__).resolve().parents[1] / "sweeper" / "report" / "_svg.py"


def _own() -> int:
    from sweeper.report._svg import line_chart

    a = line_chart({"train loss": CURVE}, "Tiny-set overfit", "step", "loss")
    b = line_chart(
        {"smoothed loss": LRS}, "LR range", "learning rate", "loss", logx=True, marks={"x": 1.0}
    )
    return len(a) + len(b)


def _matplotlib() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 0
    for data, logx in ((CURVE, False), (LRS, True)):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([p[0] for p in data], [p[1] for p in data])
        if logx:
            ax.set_xscale("log")
            ax.axvline(1.0, linestyle="--")
        ax.set_title("plot")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
        plt.close(fig)
        size += len(buf.getvalue())
    return size


def _import_ms(code: str) -> float:
    """The median of 3 fresh interpreters' time to run `code` (an import)."""
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(float(out.stdout.strip()) * 1e3)
    return statistics.median(runs)


def run(quick: bool) -> dict[str, Any]:
    reps = 3 if quick else 9
    try:
        import matplotlib  # noqa: F401

        have_mpl = True
    except ImportError:
        have_mpl = False
    _own()
    own_t, mpl_t = [], []
    own_size = mpl_size = 0
    if have_mpl:
        _matplotlib()
    for _ in range(reps):
        t = time.perf_counter()
        own_size = _own()
        own_t.append(time.perf_counter() - t)
        if have_mpl:
            t = time.perf_counter()
            mpl_size = _matplotlib()
            mpl_t.append(time.perf_counter() - t)
    load_own = (
        "import importlib.util as u; s = u.spec_from_file_location('svg', "
        f"{str(SVG_PY)!r}); s.loader.exec_module(u.module_from_spec(s))"
    )
    rows = [
        {
            "renderer": "sweeper report/_svg.py",
            "import_ms": round(_import_ms(load_own), 1),
            "two_plots_ms": round(statistics.median(own_t) * 1e3, 2),
            "svg_kB": round(own_size / 1e3, 1),
        }
    ]
    if have_mpl:
        mpl_ms = statistics.median(mpl_t) * 1e3
        rows.append(
            {
                "renderer": "matplotlib (Agg, SVG)",
                "import_ms": round(_import_ms("import matplotlib.pyplot"), 1),
                "two_plots_ms": round(mpl_ms, 2),
                "svg_kB": round(mpl_size / 1e3, 1),
            }
        )
    else:
        rows.append({"renderer": "matplotlib: not installed (pip install matplotlib)"})
    return {"repeats": reps, "rows": rows}
