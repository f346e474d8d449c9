"""The real Prefect UI in headless Chromium (Playwright): open a paused flow run, answer its approval form.

The session's Prefect server serves the UI at its API URL without `/api`. Chromium is Debian's
(`hack/browser.sh` installs it; `GREENLIGHT_CHROMIUM` names another binary); Playwright's own browser downloads
are not used. The browser talks to 127.0.0.1/localhost only: every other request is aborted and listed in
`Browser.blocked`. On any failure inside `browser_session(...)` the page's screenshot and HTML are saved under
`artifacts/` at the repository root.

Selectors (Prefect 3.8.8's Vue UI, found by exploring the DOM):
- flow run page `/runs/flow-run/<id>`: state badge `.state-badge` (text "Paused", "Completed", ...); header
  button "Resume" (only while the run is Paused);
- the resume form is a `role=dialog` titled "Resume Flow Run": the run input's description rendered as markdown
  (`article.markdown-renderer`, its first line an h3 heading), then one `.schema-form-property` per field, labelled
  "<Title> (Optional)": a boolean is a `role=switch` (aria-checked), a string a textarea (`role=textbox`; its
  `<label for>` points at no id, so get_by_label does not find it); footer buttons "Submit" and "Close".
- Submit POSTs `/api/flow_runs/<id>/resume` with `{"run_input": {...}}` and shows the toast "Flow run resumed".
"""

from __future__ import annotations

import json
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from tests.e2e.prefect_ops import api_call

try:
    from playwright.sync_api import Locator, Page, Route, expect, sync_playwright
except ImportError as exc:  # fail the UI tests with a clear message, not the whole collection
    _PLAYWRIGHT_MISSING: ImportError | None = exc
    expect = sync_playwright = None  # type: ignore[assignment]
else:
    _PLAYWRIGHT_MISSING = None

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
DOCS_IMG = ARTIFACTS / "docs-img"  # pictures for the documentation; small copies are committed in docs/img/
CHROMIUM = os.environ.get("GREENLIGHT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking"]
LOCAL = re.compile(r"^(https?|wss?)://(127\.0\.0\.1|localhost)(:\d+)?(/|$)")
ACTION_TIMEOUT_MS = 30_000  # each click/fill/expect: generous for a loaded 2-core machine, but bounded
NAVIGATION_TIMEOUT_MS = 60_000


def ui_url(prefect_api: str) -> str:
    """The UI's base URL: the API URL without its `/api` suffix."""
    return prefect_api.rstrip("/").removesuffix("/api")


@dataclass
class Browser:
    page: Page
    base: str
    blocked: list[str] = field(default_factory=list)

    def open_flow_run(self, run_id: str) -> None:
        self.page.goto(f"{self.base}/runs/flow-run/{run_id}", wait_until="domcontentloaded")

    def state_badge(self) -> Locator:
        return self.page.locator(".state-badge").first

    def save(self, name: str) -> tuple[Path, Path]:
        """Screenshot (PNG, full page) and HTML of the page as artifacts/<name>.png/.html."""
        ARTIFACTS.mkdir(exist_ok=True)
        png, html = ARTIFACTS / f"{name}.png", ARTIFACTS / f"{name}.html"
        self.page.screenshot(path=str(png), full_page=True)
        html.write_text(self.page.content())
        return png, html


    def picture(self, name: str) -> Path | None:
        """A picture for the documentation: the visible page as artifacts/docs-img/<name>.jpg (JPEG, so a copy
        fits in docs/img/). A side effect of the test, never its failure: a warning when it cannot be taken."""
        try:
            self.page.wait_for_load_state("networkidle", timeout=5_000)
        except Exception:  # noqa: BLE001 - the UI polls; a page that never idles is still worth its picture
            pass
        try:
            DOCS_IMG.mkdir(parents=True, exist_ok=True)
            path = DOCS_IMG / f"{name}.jpg"
            self.page.screenshot(path=str(path), type="jpeg", quality=70)
            return path
        except Exception as exc:  # noqa: BLE001
            print(f"warning: no documentation picture {name}: {exc}")
            return None

    def open_artifact(self, prefect_api: str, run_id: str, key_prefix: str) -> bool:
        """Open the run's newest artifact whose key starts with `key_prefix` (e.g. the release report)."""
        try:
            found = api_call("POST", f"{prefect_api}/artifacts/filter", json={
                "artifacts": {"flow_run_id": {"any_": [run_id]}}, "sort": "CREATED_DESC"}).json()
            artifact = next(a for a in found if (a.get("key") or "").startswith(key_prefix))
            self.page.goto(f"{self.base}/artifacts/artifact/{artifact['id']}", wait_until="domcontentloaded")
            expect(self.page.get_by_text(artifact["key"]).first).to_be_visible()
            return True
        except Exception as exc:  # noqa: BLE001 - a documentation picture, not the test's subject
            print(f"warning: could not open the {key_prefix}* artifact of {run_id}: {exc}")
            return False


def _local_only(blocked: list[str]):
    def handle(route: Route) -> None:
        url = route.request.url
        if LOCAL.match(url) or url.startswith(("data:", "blob:", "about:")):
            route.continue_()
        else:
            blocked.append(url)
            route.abort("blockedbyclient")
    return handle


@contextmanager
def browser_session(prefect_api: str, name: str) -> Iterator[Browser]:
    """Headless Chromium on the session's Prefect UI. If the block raises, saves artifacts/<name>-failure.*"""
    if _PLAYWRIGHT_MISSING is not None:
        raise AssertionError(f"Playwright is not installed ({_PLAYWRIGHT_MISSING}): pip install -e '.[test]'")
    if not Path(CHROMIUM).exists():
        raise AssertionError(f"{CHROMIUM} is missing: run `bash hack/browser.sh` (make test does)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=NAVIGATION_TIMEOUT_MS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1200})
            session = Browser(context.new_page(), ui_url(prefect_api))
            context.route("**/*", _local_only(session.blocked))
            session.page.set_default_timeout(ACTION_TIMEOUT_MS)
            session.page.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
            expect.set_options(timeout=ACTION_TIMEOUT_MS)
            try:
                yield session
            except BaseException:
                try:
                    try:  # let a page that was still loading render, so the screenshot shows something
                        session.page.wait_for_load_state("networkidle", timeout=5_000)
                    except Exception:  # noqa: BLE001
                        pass
                    png, html = session.save(f"{name}-failure")
                    print(f"UI at failure: {png} {html}")
                except Exception as exc:  # noqa: BLE001 - never hide the real failure
                    print(f"could not save the page after the failure: {exc}")
                raise
        finally:
            browser.close()


@dataclass
class ResumeForm:
    """The "Resume Flow Run" dialog of a paused run that waits for input."""

    page: Page
    dialog: Locator

    @classmethod
    def open(cls, ui: Browser, run_id: str) -> "ResumeForm":
        ui.open_flow_run(run_id)
        expect(ui.state_badge()).to_have_text("Paused")
        ui.page.get_by_role("button", name="Resume", exact=True).click()
        dialog = ui.page.get_by_role("dialog").filter(has_text="Resume Flow Run")
        expect(dialog).to_be_visible()
        return cls(ui.page, dialog)

    def description(self) -> Locator:
        """The run input's description (markdown rendered by the UI)."""
        return self.dialog.locator("article.markdown-renderer").first

    def field(self, title: str) -> Locator:
        """One form field, by the title the UI derives from the schema (`reason` -> "Reason (Optional)")."""
        label = self.page.locator(".schema-form-property__label").get_by_text(re.compile(rf"^{re.escape(title)}\b"))
        return self.dialog.locator(".schema-form-property").filter(has=label)

    def set_switch(self, title: str, on: bool) -> None:
        switch = self.field(title).get_by_role("switch")
        if (switch.get_attribute("aria-checked") == "true") != on:
            switch.click()
        expect(switch).to_have_attribute("aria-checked", "true" if on else "false")

    def fill(self, title: str, text: str) -> None:
        box = self.field(title).get_by_role("textbox")
        box.fill(text)
        expect(box).to_have_value(text)

    def submit(self) -> dict:
        """Click Submit; returns the run_input the UI posted to the resume endpoint (after a 2xx answer). A 503
        (the SQLite-backed server busy with concurrent writes) leaves the dialog open with an error, and a person
        would click Submit again: so does this, up to 4 times."""
        for attempt in range(4):
            with self.page.expect_response(lambda r: re.search(r"/flow_runs/[^/]+/resume$", r.url) is not None
                                           and r.request.method == "POST") as answer:
                self.dialog.get_by_role("button", name="Submit", exact=True).click()
            resp = answer.value
            if resp.status not in (429, 503):
                break
            time.sleep(1 + attempt)
        assert resp.ok, f"resume answered {resp.status}: {resp.text()[:2000]}"
        expect(self.dialog).to_be_hidden()
        expect(self.page.get_by_text("Flow run resumed").first).to_be_visible()
        return json.loads(resp.request.post_data or "{}").get("run_input", {})


def wait_badge(ui: Browser, text: str, timeout_s: float = 60) -> None:
    """The run page's state badge shows `text` (the UI polls the run; reload once if it lags)."""
    deadline = time.monotonic() + timeout_s
    try:
        expect(ui.state_badge()).to_have_text(text, timeout=int(timeout_s * 500))
    except AssertionError:
        ui.page.reload(wait_until="domcontentloaded")
        left = max(5.0, deadline - time.monotonic())
        expect(ui.state_badge()).to_have_text(text, timeout=int(left * 1000))
