"""The Get started page's install block (docs/get-started.md), run exactly as written: in a copy of the checkout,
with a virtualenv's `python` and `pip` first on PATH (as in a shell where one is active), offline — pip finds
every package in the wheelhouse `make test` fills (PIP_NO_INDEX, PIP_FIND_LINKS), so the page's commands are not
changed to say so. The other commands of the page: tests/unit/test_get_started.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_install import WHEELHOUSE
from tests.get_started import ROOT, blocks

INSTALL_START = "pip wheel"


def _checkout_copy(dest: Path) -> Path:
    """The repository's tracked and untracked-but-not-ignored files, as a user's checkout has them."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def test_the_install_block_runs_as_written(tmp_path):
    assert (WHEELHOUSE / ".complete").exists(), f"{WHEELHOUSE} is not filled: run `make wheelhouse`"
    install = next(cmds for lang, cmds in blocks() if lang == "bash" and cmds[0].startswith(INSTALL_START))
    checkout = _checkout_copy(tmp_path / "greenlight")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELHOUSE), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    outputs = []
    for cmd in install:
        out = subprocess.run(["bash", "-c", cmd], cwd=checkout, env=env, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, f"`{cmd}` failed ({out.returncode}):\n{(out.stdout + out.stderr)[-3000:]}"
        outputs.append(out.stdout)
    assert outputs[-1].startswith("usage: greenlight"), outputs[-1][:500]
    greenlight = checkout / "my-project" / ".venv" / "bin" / "greenlight"
    assert greenlight.exists() and str(ROOT) not in greenlight.read_text(), "installed from the wheel, not editable"
