"""The documentation's generated reference (hack/docs/, built into the site by `mkdocs build`) against the code:
every command, flag, spec field, event, annotation and exit code is on its page, every flag and spec field has a
description, and the hand-written meanings of annotations cover exactly the keys the code uses."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from pydantic import BaseModel, Field

from hack.docs import pages, records, reference
from prefect_greenlight.tasks.decisions.rollout import DoomReason
from prefect_greenlight.tasks.record.events import PipelineEvent, ReleaseEvent

ROOT = Path(__file__).resolve().parents[2]


def _section(markdown: str, heading: str) -> str:
    """The text of one `## heading` section."""
    start = markdown.index(f"## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start:end if end > 0 else None]


def test_every_command_and_every_flag_is_on_the_cli_page_with_its_help():
    page = reference.cli_markdown()
    commands = list(reference.cli_commands())
    assert {" ".join(w) for w, _, _ in commands} >= {"blue-green", "rollback", "status", "history", "webhook",
                                                     "approve", "reject", "canary", "promote", "abort",
                                                     "pipeline run", "pipeline status", "worker"}
    for words, _, parser in commands:
        section = _section(page, f"`greenlight {' '.join(words)}`")
        for action in reference.flags(parser):
            row = next((line for line in section.splitlines() if line.startswith(f"| `{reference.flag_name(action)}`")),
                       None)
            assert row is not None, f"greenlight {' '.join(words)} {reference.flag_name(action)} is not documented"
            assert reference._cell(action.help.replace("%%", "%")) in row


def test_every_cli_flag_has_a_description():
    assert reference.cli_flags_without_help() == [], "give these flags a help= text"


def test_a_flag_without_help_is_found():
    parser = argparse.ArgumentParser(prog="x")
    sub = parser.add_subparsers(dest="command")
    cmd = sub.add_parser("go", help="go somewhere")
    cmd.add_argument("--fast", action="store_true", help="quickly")
    cmd.add_argument("--where")
    missing = [reference.flag_name(a) for w, _, p in reference.cli_commands(parser) for a in reference.flags(p)
               if not a.help]
    assert missing == ["--where"]


def test_every_spec_field_is_on_the_spec_page_with_its_description():
    page = reference.spec_markdown()
    rows = list(reference.spec_rows())
    models = {r["model"] for r in rows}
    assert {"BlueGreenSpec", "CanarySpec", "PipelineSpec", "SmokeCheck", "Hook", "Analysis", "Stage"} <= models
    for _, model, _ in reference.SPECS:
        schema = model.model_json_schema()
        for name, sub in [(model.__name__, schema), *schema.get("$defs", {}).items()]:
            for field, prop in sub.get("properties", {}).items():
                section = _section(page, name)
                assert f"| `{field}` |" in section, f"{name}.{field} is not documented"
                assert reference._cell(prop.get("description", "")) in section


def test_every_spec_field_has_a_description():
    assert reference.spec_fields_without_description() == [], "give these fields a description="


def test_a_field_without_description_is_found_and_defaults_are_the_models():
    class Probe(BaseModel):
        path: str = Field("/", description="where")
        retries: int = 3
        tags: list[str] = Field(default_factory=lambda: ["a"], description="labels")

    rows = {r["field"]: r for r in reference.model_rows("Probe", Probe.model_json_schema(), {"Probe": Probe})}
    assert [f for f, r in rows.items() if not r["description"]] == ["retries"]
    assert rows["tags"]["default"] == '`["a"]`' and rows["path"]["default"] == '`"/"`'


def test_every_event_is_on_the_events_page_with_the_payload_keys_its_emitters_pass():
    page = records.events_markdown()
    payloads = records.event_payloads()
    for event in [f"greenlight.release.{e.value}" for e in ReleaseEvent] + \
                 [f"greenlight.pipeline.{e.value}" for e in PipelineEvent]:
        assert f"| `{event}` |" in page
    assert {"blue", "green", "selector", "release_id", "strategy"} <= payloads["greenlight.release.switched"]
    assert {"outcome", "deployment", "images", "reason"} <= payloads["greenlight.release.failed"]
    assert {"pipeline_id", "stage", "next_stage"} <= payloads["greenlight.pipeline.paused"]


def test_the_annotation_meanings_cover_exactly_the_keys_in_the_code():
    in_code = records.code_keys()
    assert "greenlight.io/live-deployment" in in_code and "greenlight.io/canary-total" in in_code
    assert sorted(set(in_code) - set(records.KEYS)) == [], "describe these keys in hack/docs/records.py KEYS"
    assert sorted(set(records.KEYS) - set(in_code)) == [], "these keys are no longer in the code"
    page = records.annotations_markdown()
    for key in in_code:
        assert f"| `{key}` |" in page and "| ? |" not in page


def test_every_exit_code_is_explained():
    codes = records.exit_codes()
    assert set(codes) >= {0, 1, 2}
    assert "BadInput" in codes[2] and "ReleaseFailed" in codes[1]
    page = records.exit_codes_markdown()
    for code in codes:
        assert f"| **{code}** | {records.EXIT_MEANING[code]}" in page


def test_troubleshooting_covers_every_doom_reason():
    page = (ROOT / "docs" / "how-to" / "troubleshooting.md").read_text()
    missing = [r.value for r in DoomReason if f"| `{r.value}` |" not in page]
    assert missing == [], "add these doom reasons to docs/how-to/troubleshooting.md"


def test_every_page_of_the_nav_exists_or_is_generated():
    nav = re.findall(r":\s+([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    generated = pages.generated_pages()
    assert "reference/cli.md" in nav and "reference/spec.md" in nav
    missing = [p for p in nav if p not in generated and not (ROOT / "docs" / p).exists()]
    assert missing == []
    assert all(not (ROOT / "docs" / p).exists() for p in generated), "generated pages are never committed"


def test_repository_links_become_paths_on_the_site():
    text = "see [bench/README.md](bench/README.md), [the figures](#p1) and [site](https://example.org)"
    assert pages.repository_links_as_paths(text) == \
        "see `bench/README.md`, [the figures](#p1) and [site](https://example.org)"



def test_pictures_are_small_and_each_is_shown():
    pictures = sorted((ROOT / "docs" / "img").iterdir())
    pages = "".join(p.read_text() for p in (ROOT / "docs").rglob("*.md"))
    assert pictures, "docs/img holds the browser test's pictures"
    for picture in pictures:
        assert picture.stat().st_size < 200 * 1024, f"{picture.name}: committed pictures stay under 200 KB"
        assert f"img/{picture.name})" in pages, f"{picture.name} is shown on no page"


def test_the_readme_links_only_to_files_that_exist():
    links = re.findall(r"\]\(((?!https?://|#)[^)#]+)", (ROOT / "README.md").read_text())
    assert links, "the README links into the documentation"
    assert [link for link in links if not (ROOT / link).exists()] == []
