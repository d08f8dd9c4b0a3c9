"""optuna-dashboard on a real study store, opened in headless Chromium (Debian's package) driven
by Playwright: the study, its best value, the gate note and the gate plots are on the page."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import optuna
import pytest

from tests.conftest import ROOT, free_port, kill_group, start_cli, wait_until
from tests.services import CHROMIUM, ServiceError, ensure_chromium

SHOTS = ROOT / "test-artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_dashboard_shows_study_best_value_gate_note_and_plots(
    finished_study: Path, pareto_study: str
) -> None:
    from playwright.sync_api import sync_playwright

    try:
        ensure_chromium()  # Debian's package, installed here if missing
    except ServiceError as e:
        pytest.fail(str(e))
    study = optuna.load_study(study_name="shown", storage=f"sqlite:///{finished_study}/sweeps.db")
    best = study.best_value
    port = free_port()
    server = start_cli("dashboard", "--port", str(port), cwd=finished_study)
    SHOTS.mkdir(exist_ok=True)
    try:
        wait_until("the dashboard to listen", lambda: _listening(port), timeout=60, proc=server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(f"http://127.0.0.1:{port}/dashboard/studies/{study._study_id}")
            page.get_by_text("Best Trial").wait_for(timeout=30_000)
            page.get_by_text("gate_overfit_tiny.svg").wait_for(timeout=30_000)
            deadline = time.monotonic() + 30  # wait for the plot previews to load
            while time.monotonic() < deadline and not page.evaluate(
                "[...document.images].filter(i => i.src.includes('/artifacts/') && "
                "i.complete && i.naturalWidth > 0).length >= 3"
            ):
                page.wait_for_timeout(200)
            page.screenshot(path=str(SHOTS / "dashboard-study.png"), full_page=True)
            text = page.inner_text("body")
            assert "shown" in text
            assert repr(best) in text  # the best value as the dashboard prints it
            for plot in ("gate_lr_range_test.svg", "gate_activation_std.svg"):
                assert plot in text

            page.goto(f"http://127.0.0.1:{port}/dashboard/studies/{study._study_id}/note")
            page.get_by_text("sweeper study gate:").wait_for(timeout=30_000)
            page.screenshot(path=str(SHOTS / "dashboard-note.png"), full_page=True)
            note = page.inner_text("body")
            gate = study._storage.get_study_system_attrs(study._study_id)["sweeper:gate"]
            assert f"sweeper study gate: {gate['verdict'].upper()}" in note
            for probe in ("overfit_tiny", "lr_range_test", "init_loss"):
                assert probe in note

            # a study of several objectives: the dashboard draws its front as it is stored
            front = optuna.load_study(
                study_name=pareto_study, storage=f"sqlite:///{finished_study}/sweeps.db"
            )
            page.goto(f"http://127.0.0.1:{port}/dashboard/studies/{front._study_id}")
            page.get_by_text("Pareto Front").first.wait_for(timeout=30_000)
            page.get_by_text("Objective X:").first.wait_for(timeout=30_000)
            page.wait_for_timeout(1000)  # the plot draws after its card
            page.screenshot(path=str(SHOTS / "dashboard-pareto.png"), full_page=True)
            shown = page.inner_text("body")
            assert "val_accuracy" in shown and "params" in shown
            assert front.best_trials  # the feasible front the page draws
            assert page.locator(".js-plotly-plot .scatterlayer .point").count() >= len(
                front.best_trials
            )
            browser.close()
    finally:
        kill_group(server)
