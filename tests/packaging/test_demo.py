"""`make demo` installs only what it needs (the culler and JupyterHub 6.1) and shows a dry run
first, then the real pass, and ends with the two commands to try on one's own hub."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.realhub.fixtures import require_realhub

REPO = Path(__file__).resolve().parents[2]


def make_rule(target):
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    match = re.search(r"^%s:([^\n]*)\n((?:\t[^\n]*\n)*)" % re.escape(target), text,
                      flags=re.MULTILINE)
    return match.group(1).split(), match.group(2)


def test_demo_installs_neither_the_test_tools_nor_a_second_hub():
    prerequisites, recipe = make_rule("demo")
    assert "venv" not in prerequisites and "hub" not in prerequisites  # test tools, hub 5.5
    (installed,) = [p for p in prerequisites if p.endswith(".demo-installed")]
    _, install_recipe = make_rule(installed)
    assert "requirements-test" not in install_recipe and "-e ." in install_recipe
    assert re.search(r"install-realhub\.sh\s*$", recipe, flags=re.MULTILINE)  # 6.1 alone


@pytest.mark.realhub
@pytest.mark.timeout(180)
def test_demo_shows_the_dry_run_then_the_pass_then_the_commands_to_try():
    require_realhub()
    result = subprocess.run([sys.executable, "-m", "scripts.demo"], cwd=REPO,
                            capture_output=True, text=True, timeout=170,
                            stdin=subprocess.DEVNULL)
    out = result.stdout
    assert result.returncode == 0, out[-3000:]
    dry, real, own = (out.index("First a dry run"), out.index("Now the real pass"),
                      out.index("On your own hub"))
    assert dry < out.index("would-stop") < real < out.index("event=stop ") < own
    tail = out[own:]
    assert tail.count("jupyterhub-idle-culler --url=") == 2 and "--dry-run" in tail
    assert "Hub stopped." in out
