"""Every command on the Get started page (docs/get-started.md) is run by a test exactly as written, or — where it
cannot run inside `make test` — checked as far as it can be:

- `make demo` / `make test`: they are `make test` itself (and the demo, which `make test` covers step by step);
  checked to be Makefile targets that `make help` announces.
- `.venv/bin/greenlight ... --help`: run here, in the repository.
- the install block (`pip wheel`, `python -m venv`, `pip install`, `pip check`, `greenlight --help`): run by
  tests/e2e/test_get_started.py, offline from the wheelhouse `make test` fills.
- the first release on your own cluster: run as written by tests/e2e/test_get_started.py on the test cluster (its
  kubeconfig as ~/.kube/config); here each `greenlight` line is parsed by the CLI's own parser as well.
"""

from __future__ import annotations

import re
import shlex
import subprocess

from prefect_greenlight.cli.main import build_parser
from tests.get_started import ROOT, blocks, commands, first_release

INSTALL = ("pip wheel", "python -m venv", "my-project/.venv/bin/")


def test_the_page_has_only_the_blocks_this_test_knows():
    langs = [lang for lang, _ in blocks()]
    assert langs.count("bash") == 4 and set(langs) <= {"bash", "yaml"}, langs
    for cmd in commands("bash"):
        assert cmd.startswith(("make ", ".venv/bin/greenlight ", "export KUBECONFIG=", "greenlight ", *INSTALL)), \
            f"no test runs: {cmd}"


def test_make_commands_are_targets_make_help_announces():
    makes = [c for c in commands("bash") if c.startswith("make ")]
    assert makes == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    announced = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    for cmd in makes:
        target = cmd.split()[1]
        assert re.search(rf"^{target}:", makefile, re.M), f"{target} is not a Makefile target"
        assert f"make {target} " in announced, announced


def test_help_commands_run_as_written():
    helps = [c for c in commands("bash") if c.startswith(".venv/bin/greenlight ")]
    assert helps, "the page shows the CLI's help"
    for cmd in helps:
        out = subprocess.run(shlex.split(cmd), cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout.startswith("usage: greenlight"), (cmd, out.stderr[-2000:])


def test_the_first_release_example_uses_only_real_commands_and_flags():
    lines = first_release()
    assert lines and lines[0].startswith("export KUBECONFIG=")
    parser = build_parser()
    for line in lines[1:]:
        words = shlex.split(line)
        assert words[0] == "greenlight", line
        args = parser.parse_args(words[1:])  # a wrong flag raises BadInput
        assert args.service == "my-app-service" and args.namespace == "shop"
