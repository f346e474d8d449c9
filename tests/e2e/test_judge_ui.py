"""The canary judge's report in the real Prefect UI (headless Chromium, tests/e2e/ui.py): a flow run records one
judge step's artifacts exactly as `judge-<p>` does (tasks/canary/judge_step.report: the table, the markdown with
text histograms, the latency picture as an image artifact whose URL is an SVG data URL); the UI's artifact pages
then show the table's verdicts, and the picture is an <img> the browser decoded (naturalWidth > 0), not a broken
image. Screenshots: artifacts/judge-ui-image.png, artifacts/judge-ui-table.png."""

from __future__ import annotations

import random

from prefect import flow

from prefect_greenlight.tasks.canary.judge_step import Samples, report
from prefect_greenlight.tasks.decisions.judge import judge, judge_metric, rules_of
from prefect_greenlight.tasks.spec.judge import JudgeSpec
from tests.e2e.prefect_ops import api_call
from tests.e2e.ui import browser_session, expect


@flow(name="judge-report")
def judge_report(key: str) -> str:
    rng = random.Random(23)
    samples = Samples()
    samples.add("latency", "canary", [rng.uniform(52, 78) for _ in range(40)])    # 65 +- 13 ms
    samples.add("latency", "baseline", [rng.uniform(40, 60) for _ in range(40)])  # 50 +- 10 ms
    samples.add("errors", "canary", [0.0] * 40)
    samples.add("errors", "baseline", [0.0] * 40)
    spec = JudgeSpec()
    judgement = judge([judge_metric(r, samples.of(r.name)["canary"], samples.of(r.name)["baseline"])
                       for r in rules_of(spec)])
    report(key, 25, judgement, samples, spec)
    return judgement.decision.value


def _artifact(prefect_api: str, key: str) -> dict:
    [found] = api_call("POST", f"{prefect_api}/artifacts/filter",
                       json={"artifacts": {"key": {"any_": [key]}}}).json()
    return found


def test_the_judges_table_and_picture_render_in_the_prefect_ui(prefect_api):
    assert judge_report("judge-ui") == "fail"
    image, table = _artifact(prefect_api, "judge-ui-latency"), _artifact(prefect_api, "judge-ui-table")
    assert image["type"] == "image" and image["data"].startswith("data:image/svg+xml;base64,")
    assert _artifact(prefect_api, "judge-ui-report")["type"] == "markdown"
    with browser_session(prefect_api, "judge-ui") as ui:
        ui.page.goto(f"{ui.base}/artifacts/artifact/{image['id']}", wait_until="domcontentloaded")
        img = ui.page.locator("img[src^='data:image/svg+xml']").first
        expect(img).to_be_visible()
        width = img.evaluate("el => el.complete ? el.naturalWidth : 0")
        assert width == 640, f"the picture did not decode in the browser (naturalWidth {width})"
        ui.save("judge-ui-image")
        ui.page.goto(f"{ui.base}/artifacts/artifact/{table['id']}", wait_until="domcontentloaded")
        expect(ui.page.get_by_text("High", exact=True).first).to_be_visible()
        expect(ui.page.get_by_text("latency", exact=True).first).to_be_visible()
        ui.save("judge-ui-table")
        assert not ui.blocked, ui.blocked
