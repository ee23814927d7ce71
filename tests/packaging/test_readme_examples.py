"""Every README.md example that runs a culler runs against a real JupyterHub 6.1, with the role
the README gives it, and does what the README says.

The examples are read from README.md itself (the code blocks after "## Run it against your
hub" and "**A hub-managed service**"), so a role that lacks a scope its command needs fails
here. Only the hub's address and the token file are replaced; the daemon command of the
standalone example gets ``--once`` added (a daemon would not end; the preflight, which refuses
missing scopes, is the same).
"""

import ast
import re
from pathlib import Path

import pytest

from tests.realhub.fixtures import require_realhub, running_hub
from tests.support.realhub import RealHub, module_command

pytestmark = pytest.mark.realhub

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE_URL = "https://hub.example.org/hub/api"
EXAMPLE_TOKEN_FILE = "/path/to/token"


def section(marker: str) -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index(marker):]


def first_block(text: str, language: str) -> str:
    return re.search(r"^```%s\n(.*?)^```" % language, text,
                     flags=re.MULTILINE | re.DOTALL).group(1)


def literal_of(source: str, target: str):
    """The literal assigned to ``c.JupyterHub.<target>`` in a jupyterhub_config.py example,
    with ``sys.executable`` and ``os.environ[...]`` read as placeholders."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == target:
            text = ast.unparse(node.value)
            text = text.replace("sys.executable", "'PYTHON'")
            text = re.sub(r"os\.environ\[[^\]]*\]", "'TOKEN'", text)
            return ast.literal_eval(text)
    raise AssertionError("no %s in the example" % target)


def culler_lines(block: str) -> list:
    """The block's commands that run the culler, continuation lines joined, split into words."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.split() for line in joined.splitlines()
            if line.startswith("jupyterhub-idle-culler ")]


def test_readme_standalone_examples_run_with_the_readme_role(tmp_path):
    require_realhub()
    text = section("## Run it against your hub")
    (role,) = literal_of(first_block(text, "python"), "c.JupyterHub.load_roles")
    commands = culler_lines(first_block(text, "sh"))
    assert len(commands) == 2 and "--dry-run" in commands[0], commands
    hub = RealHub(tmp_path / "hub", services=[{"name": "idle-culler", "scopes": role["scopes"]}])
    with running_hub(hub):
        hub.create_users(["idle-ann", "busy-bob"])
        for user in ("idle-ann", "busy-bob"):
            hub.start_server(user)
        hub.backdate("idle-ann", "", last_activity=7200, started=7800)
        hub.backdate("idle-ann", None, user_last_activity=7200, created=9000)
        token_file = tmp_path / "token"
        token_file.write_text(hub.token("idle-culler") + "\n")
        results = []
        for words in commands:
            args = [word.replace(EXAMPLE_URL, hub.api_url).replace(EXAMPLE_TOKEN_FILE,
                                                                   str(token_file))
                    for word in words[1:]]
            if "--once" not in args:
                args.append("--once")
            result = hub.run_culler("idle-culler", *args)
            assert result.returncode == 0, (args, result.stderr[-3000:])
            results.append(result)
            if "--dry-run" in args:  # nothing is sent: the idle user is still there
                assert "idle-ann" in result.stdout and hub.user_exists("idle-ann")
        assert not hub.user_exists("idle-ann") and hub.user_exists("busy-bob")
        assert "level=ERROR" not in results[-1].stderr


def test_readme_hub_managed_example_runs_with_the_readme_role(tmp_path):
    require_realhub()
    text = section("**A hub-managed service**")
    source = first_block(text, "python")
    (service,) = literal_of(source, "c.JupyterHub.services")
    (role,) = literal_of(source, "c.JupyterHub.load_roles")
    assert role["services"] == [service["name"]]
    words = service["command"]
    assert words[:3] == ["PYTHON", "-m", "jupyterhub_idle_culler"], words
    # The hub's own interpreter has no culler installed: the test's does.
    command = module_command() + words[3:]
    hub = RealHub(tmp_path / "hub", services=[
        {"name": service["name"], "scopes": role["scopes"], "command": command}])
    with running_hub(hub, managed_passes=1):
        log = hub.wait_for_log("pass-done", count=1, timeout=30)
        assert "level=ERROR" not in log and "config-error" not in log
