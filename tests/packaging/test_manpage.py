"""The man page made by packaging/make-manpage.py covers every option and renders cleanly."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from idle_culler_daemon import scopes
from idle_culler_daemon.config import CullSettings
from idle_culler_daemon.errors import EXIT_CODES
from idle_culler_daemon.options import OPTIONS, build_parser, env_names
from idle_culler_daemon.reference import OTHER_ENVIRONMENT

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "packaging" / "make-manpage.py"


def make_page(tmp_path, epoch="1700000000"):
    env = dict(os.environ, SOURCE_DATE_EPOCH=epoch)
    out = tmp_path / "jupyterhub-idle-culler.1"
    subprocess.run([sys.executable, str(SCRIPT), "-o", str(out)], check=True, env=env,
                   timeout=60)
    return out.read_text(encoding="utf-8")


def plain(roff):
    """The page's words without the escapes that matter here (\\- and font changes)."""
    return (roff.replace("\\-", "-").replace("\\fB", "").replace("\\fI", "")
            .replace("\\fR", "").replace("\\e", "\\"))


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    return make_page(tmp_path_factory.mktemp("man"))


def test_every_option_flag_is_documented(page):
    text = plain(page)
    options_part = text.split("\n.SH OPTIONS\n", 1)[1].split("\n.SH ", 1)[0]
    for option in OPTIONS:
        assert option.flag in options_part, option.flag
    for action in build_parser()._actions:
        for flag in action.option_strings:
            assert flag in options_part, flag


def test_every_environment_variable_is_documented(page):
    text = plain(page)
    environment = text.split("\n.SH ENVIRONMENT\n", 1)[1].split("\n.SH ", 1)[0]
    for name in env_names() + ["JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN",
                               "JUPYTERHUB_REQUEST_TIMEOUT", "CREDENTIALS_DIRECTORY",
                               "JUPYTERHUB_SSL_KEYFILE", "JUPYTERHUB_SSL_CERTFILE",
                               "JUPYTERHUB_SSL_CLIENT_CA", "NOTIFY_SOCKET", "WATCHDOG_USEC"]:
        assert name in environment, name


def test_sections_files_and_exit_codes(page):
    text = plain(page)
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "ENVIRONMENT", "FILES",
                    "EXIT STATUS", "EXAMPLES", "SEE ALSO"):
        assert "\n.SH %s\n" % section in text, section
    for path in ("culler.env", "api-token", "culler.conf"):
        assert "/etc/jupyterhub-idle-culler/" + path in text
    exits = "\n" + text.split("\n.SH EXIT STATUS\n", 1)[1].split("\n.SH ", 1)[0]
    for code in ("0", "1", "2", "75", "78"):
        assert "\n.TP\n%s\n" % code in exits, code
    assert exits.count("\n.TP\n") == len(EXIT_CODES)


def test_reproducible_and_dated_from_source_date_epoch(tmp_path):
    first = make_page(tmp_path / "a")
    second = make_page(tmp_path / "b")
    assert first == second
    assert '"2023-11-14"' in first  # SOURCE_DATE_EPOCH=1700000000
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    undated = subprocess.run([sys.executable, str(SCRIPT)], check=True, env=env,
                             capture_output=True, text=True, timeout=60).stdout
    assert "\n.TH " in "\n" + undated


def test_renders_without_warnings(page, tmp_path):
    groff = shutil.which("groff")
    if groff is None:
        if os.environ.get("CI") == "true":
            pytest.fail("groff is missing on CI (install groff-base)")
        pytest.skip("groff is not installed")
    source = tmp_path / "page.1"
    source.write_text(page, encoding="utf-8")
    result = subprocess.run([groff, "-man", "-Tutf8", "-ww", str(source)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "jupyterhub-idle-culler" in result.stdout


def test_duration_syntax_is_explained_with_the_options(page):
    options_part = plain(page).split("\n.SH OPTIONS\n", 1)[1].split("\n.SH ", 1)[0]
    assert "DURATION" in options_part and "1h30m" in options_part and "2w" in options_part
    assert "--timeout=DURATION" in options_part


def test_the_scopes_are_those_the_preflight_checks(page):
    # The page once omitted read:users for --cull-users; it is now made from scopes.py.
    description = plain(page).split("\n.SH DESCRIPTION\n", 1)[1].split("\n.SH ", 1)[0]
    culling_users = CullSettings(cull_users=True)
    for needed in (scopes.read_scopes(culling_users) + scopes.write_scopes(culling_users)
                   + scopes.advised_scopes(culling_users)):
        assert " or ".join(needed) in description, needed
    assert "--cull-users, advised: read:users or admin:users" in description


def test_other_environment_variables_come_from_the_declarations(page):
    environment = plain(page).split("\n.SH ENVIRONMENT\n", 1)[1].split("\n.SH ", 1)[0]
    for name, meaning in OTHER_ENVIRONMENT:
        assert "\n%s\n%s" % (name, meaning) in environment, name


def test_options_a_reload_keeps_say_so(page):
    options_part = plain(page).split("\n.SH OPTIONS\n", 1)[1].split("\n.SH ", 1)[0]
    for option in OPTIONS:
        entry = options_part.split("\n" + option.flag, 1)[1].split("\n.TP\n", 1)[0]
        assert ("a change needs a restart" in entry) == (bool(option.path)
                                                         and not option.reload), option.name


def test_culler_env_example_shows_every_variable_at_its_declared_default():
    text = (REPO / "packaging" / "systemd" / "culler.env.example").read_text(encoding="utf-8")
    shown = dict(re.findall(r"^#(JUPYTERHUB_IDLE_CULLER_\w+)=(.*)$", text, flags=re.MULTILINE))
    for option in OPTIONS:
        if not option.env_name or option.name == "config":  # the packaged file, when it exists
            continue
        assert option.env_name in shown, option.env_name
        value = shown[option.env_name]
        if value:
            assert option.convert(value) == option.default, option.env_name
        else:
            assert option.default in (None, ()), option.env_name


def env_example_comments():
    """Each JUPYTERHUB_IDLE_CULLER_* variable of culler.env.example and the comment above it."""
    text = (REPO / "packaging" / "systemd" / "culler.env.example").read_text(encoding="utf-8")
    found, comment = {}, []
    for line in text.splitlines():
        match = re.match(r"#(JUPYTERHUB_IDLE_CULLER_\w+)=", line)
        if match:
            found[match.group(1)] = " ".join(comment)
        comment = comment + [line[2:].strip()] if line.startswith("# ") else []
    return found


def test_culler_env_example_explains_each_variable_with_its_option_help():
    # The file once said page size 0 "lets the hub choose (50, at most 200)" while --help
    # said otherwise: each comment now starts with the declared help (notes for the units
    # may follow).
    comments = env_example_comments()
    for option in OPTIONS:
        if option.env_name:
            assert comments[option.env_name].startswith(" ".join(option.help.split())), \
                option.env_name
