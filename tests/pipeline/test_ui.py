"""The dashboard in a real browser: Playwright (from PyPI) driving Debian's Chromium against
`tunegate serve` on 127.0.0.1. Every page renders with no console error and no request leaving
loopback; a running tiny local job's chart gains points without a reload; cancel asks, then
cancels, and the journal agrees; the plan chart marks the break-even the CLI prints.

Screenshots of every page, at 1280 px and at a phone's width, go to $TUNEGATE_SCREENSHOTS
(default: build/ui-screenshots, not committed) for a reviewer to open.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from click.testing import CliRunner

pytest.importorskip("playwright.sync_api")
pytest.importorskip("jinja2")
pytest.importorskip("trl")

from cli.main import main
from gateway.evaluate.reports import Delta, store
from gateway.facade.launch import launch
from gateway.journal import Journal
from gateway.serve import running
from tests.support.job_files import local_job
from tests.support.polling import until

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMIUM:
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("TUNEGATE_SCREENSHOTS", ROOT / "build" / "ui-screenshots"))
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


class Watched:
    """A page whose console errors, uncaught errors and off-machine requests are collected."""

    def __init__(self, browser, width: int = 1280, height: int = 900):
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.offsite: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", self._request)
        self.page.on(
            "response",
            lambda r: self.errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )

    def _request(self, req) -> None:
        host = urlparse(req.url).hostname
        if host not in ("127.0.0.1", "localhost", None) and not req.url.startswith("data:"):
            self.offsite.append(req.url)

    def shoot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.offsite == [], self.offsite

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def folder(tmp_path) -> Path:
    """The dashboard's folder: the bundled example's job and data files."""
    out = tmp_path / "work"
    shutil.copytree(ROOT / "examples" / "brand-voice", out, ignore=shutil.ignore_patterns("*.py"))
    return out


def _ui(base_url: str) -> str:
    return base_url.removesuffix("/v1") + "/ui"


def test_a_running_job_gains_points_then_cancel_asks_and_cancels(browser, tiny, tmp_path):
    spec = local_job(tmp_path, tiny, n=64, valid=0, epochs=40)
    job = launch(spec, backend="local")
    with running(ui_folder=tmp_path) as url:
        w = Watched(browser)
        page = w.page
        until(lambda: job.status().state == "running", 120, 0.3)
        page.goto(f"{_ui(url)}/jobs/{job.id}")
        chart = page.locator("#loss-chart")
        page.wait_for_function(
            "() => Number(document.getElementById('loss-chart').dataset.points) >= 1",
            timeout=60_000,
        )
        first = int(chart.get_attribute("data-points"))
        nav_count = page.evaluate("performance.getEntriesByType('navigation').length")
        page.wait_for_function(
            f"() => Number(document.getElementById('loss-chart').dataset.points) > {first}",
            timeout=60_000,
        )
        # the same document: the points came through the live panel, not a reload
        assert page.evaluate("performance.getEntriesByType('navigation').length") == nav_count
        assert page.locator("canvas").count() >= 1
        w.shoot("job-running")

        page.get_by_role("button", name="Cancel…").click()
        dialog = page.locator("dialog#dlg-cancel")
        assert dialog.is_visible()
        assert f"tunegate cancel {job.id}" in dialog.locator("code.command").inner_text()
        w.shoot("job-cancel-dialog")
        assert job.record.state == "running"  # asking changed nothing
        dialog.get_by_role("button", name="Yes, cancel").click()
        page.wait_for_selector(".notice")
        assert "cancel requested" in page.locator(".notice").inner_text()
        assert until(lambda: job.status().state == "cancelled", 60, 0.3), job.record.state
        with Journal() as journal:
            assert journal.get(job.id).state == "cancelled"
            assert any(e.kind == "cancel" for e in journal.events(job.id))
        page.reload()
        assert page.locator("#live .state").inner_text() == "cancelled"
        assert page.get_by_role("button", name="Resume…").count() == 1
        w.clean()
        w.close()


def test_the_plan_chart_marks_the_break_even_the_cli_prints(browser, folder):
    args = ["--base", "meta-llama/Llama-3.1-8B-Instruct", "--examples", "5000"]
    args += ["--avg-tokens", "600", "--epochs", "2", "--method", "qlora", "--serve", "2M/day"]
    cli = json.loads(CliRunner().invoke(main, ["plan", *args, "--json"]).output)
    breakeven = cli["breakeven_tokens_per_day"]
    assert breakeven
    with running(ui_folder=folder) as url:
        w = Watched(browser)
        page = w.page
        page.goto(f"{_ui(url)}/plan")
        page.get_by_label("or a base model").fill("meta-llama/Llama-3.1-8B-Instruct")
        page.get_by_label("examples").fill("5000")
        page.get_by_label("tokens per example").fill("600")
        page.get_by_label("epochs").fill("2")
        page.get_by_label("method").select_option("qlora")
        page.get_by_label("serving tokens/day").fill("2M/day")
        page.get_by_role("button", name="Plan it").click()
        page.wait_for_function(
            "() => (document.getElementById('cost-chart') || {dataset: {}}).dataset.markers"
        )
        marks = json.loads(page.locator("#cost-chart").get_attribute("data-markers"))
        drawn = {m["label"]: m["x"] for m in marks}
        assert drawn["break-even"] == breakeven
        assert int(page.locator("#breakeven").get_attribute("data-tokens-per-day")) == breakeven
        text = page.locator("#breakeven").inner_text()
        assert cli["breakeven_note"] in text
        assert drawn["your estimate"] == 2_000_000
        assert page.locator("table.offers tr.refused").count() >= 1  # refusals with reasons
        w.shoot("plan-breakeven")
        # a job file from the folder: the bundled example (no per-token serving: no break-even)
        page.goto(f"{_ui(url)}/plan")
        page.get_by_label("job file in").select_option("job.yaml")
        page.get_by_role("button", name="Plan it").click()
        page.wait_for_selector("#breakeven")
        assert "local on cpu wins" in page.locator("pre.explain").inner_text()
        w.shoot("plan-job-file")
        w.clean()
        w.close()


def _seed_finished_job(tmp_path: Path) -> str:
    """A succeeded job with metrics, an artifact and a stored eval report, as the journal
    holds them after a real run (the pipeline eval tests produce such rows for real)."""
    with Journal() as journal:
        rec = journal.record_intent(
            "local",
            "sft",
            "tiny",
            {"base_model": "tiny", "lora": {"rank": 8}, "_origin": {"lora.rank": "job"}},
            estimate={
                "train_usd": {"low": 0.0, "likely": 0.01, "high": 0.02},
                "train_hours": {"likely": 0.1},
            },
            name="seeded",
        )
        for step, loss in [(1, 3.0), (2, 2.5), (3, 2.2)]:
            journal.add_event(rec.id, "remote", f"step {step}", step=step, data={"loss": loss})
        journal.add_event(rec.id, "remote", "eval", step=3, data={"eval_loss": 2.4})
        journal.update(rec.id, state="succeeded", actual={"usd": 0.005})
        store(
            "ev-seeded",
            {"id": "ev-seeded"},
            "# Task eval",
            kind="task",
            target=rec.id,
            job_id=rec.id,
            verdict="improved",
            summary={"data": "valid.jsonl", "scorer": "regex", "n": 22, "base": 0.0, "tuned": 95.5,
                     "delta": 95.5, "ci_low": 86.4, "ci_high": 100.0,
                     "arms": [{"name": "few-shot:5", "label": "base + 5-shot", "base": 95.5,
                               "tuned": 95.5, "delta": 0.0, "ci_low": -9.1, "ci_high": 9.1,
                               "verdict": "inconclusive", "says": "inconclusive"}],
                     "usage": {"tuned": {"prompt": 38.0}, "base": {"prompt": 38.0},
                               "few-shot:5": {"prompt": 412.0}},
                     "cost": {"arms": {"tuned": {"usd_month": 7.88},
                                       "few-shot:5": {"usd_month": 7.88}},
                              "sentences": ["The fine-tune against base + 5-shot is inconclusive"]}},
            deltas=[Delta("valid.jsonl (regex)", 95.5, 86.4, 100.0, "improved")],
        )  # fmt: skip
        return rec.id


@pytest.mark.parametrize("width", [1280, PHONE["width"]])
def test_every_page_renders_offline_without_errors(browser, folder, tmp_path, width):
    job_id = _seed_finished_job(tmp_path)
    with running(ui_folder=folder) as url:
        w = Watched(browser, width=width, height=900 if width > 500 else PHONE["height"])
        page, ui, tag = w.page, _ui(url), f"{width}px"
        page.goto(ui + "/")
        assert page.locator("table.jobs").get_by_role("link", name=job_id).count() == 1
        assert "improved (+95.5)" in page.locator("table.jobs").inner_text()
        w.shoot(f"jobs-{tag}")
        page.get_by_role("link", name=job_id).click()
        page.wait_for_selector("#loss-chart canvas")
        assert (
            page.locator("#loss-chart").get_attribute("data-points") == "3"
        )  # step 3: two events, one point
        assert page.locator(".eval img").count() == 1
        # loaded or failed, not still on its way (a broken image is complete with width 0)
        page.wait_for_function("document.querySelector('.eval img').complete")
        assert page.evaluate("document.querySelector('.eval img').naturalWidth") > 0
        arms = page.locator(".eval table").inner_text()
        assert "base + 5-shot" in arms and "412" in arms and "$7.88" in arms
        assert "lora.rank" in page.locator("table").last.inner_text()
        assert page.get_by_role("button", name="Export…").count() == 1
        w.shoot(f"job-{tag}")
        page.goto(f"{ui}/data?file=train.jsonl&eval=valid.jsonl")
        assert "158 examples" in page.locator("#data-summary").inner_text()
        assert page.locator(".hist li").count() == 16
        w.shoot(f"data-{tag}")
        page.goto(f"{ui}/deployments")
        assert page.get_by_role("heading", name="Deployments and traffic").count() == 1
        w.shoot(f"deployments-{tag}")
        page.goto(f"{ui}/experiments")
        assert page.get_by_role("heading", name="A/B experiments").count() == 1
        w.shoot(f"experiments-{tag}")
        page.goto(f"{ui}/distill")
        assert page.get_by_role("heading", name="Teachers and what they cost").count() == 1
        w.shoot(f"distill-{tag}")
        page.goto(f"{ui}/plan?file=job.yaml")
        page.wait_for_selector("#cost-chart canvas")
        w.shoot(f"plan-{tag}")
        # keyboard: the skip link is the first stop, and every nav link is reachable by Tab
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"
        if width < 500:  # nothing wider than the phone's screen but the scrolling tables
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width + 1, overflow
        w.clean()
        w.close()


def test_actions_from_another_site_or_machine_are_refused(folder, tmp_path):
    import httpx

    job_id = _seed_finished_job(tmp_path)
    with running(ui_folder=folder) as url:
        res = httpx.post(f"{_ui(url)}/jobs/{job_id}/export", data={"csrf": "forged"})
        assert res.status_code == 403 and "stale or from another site" in res.text
        with Journal() as journal:
            assert not any(e.kind == "ui" for e in journal.events(job_id))
