"""Which files are obeyed, and the reference's ``.py`` file read as data: bounded, with rules,
and with errors that point at the fix."""

import os
import time

import pytest

from idle_culler_daemon import pyconfig, sources
from idle_culler_daemon.cli import main
from idle_culler_daemon.config import load_config
from idle_culler_daemon.errors import EXIT_CONFIG, ConfigError
from idle_culler_daemon.options import DEFAULT_CONFIG_FILE, parse_command_line
from idle_culler_daemon.sources import read_text

TOKEN = "s3cr3t-token-value"
ENV = {"JUPYTERHUB_API_TOKEN": TOKEN}
NOBODY = 65534  # another user: the tests run as root or as the file's owner
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")


def load_files(argv, env=ENV):
    return load_config(parse_command_line(argv), env, read_text)


def load_text(path, text, argv=()):
    """Load with one in-memory file, ``path``, holding ``text``."""
    def read(name):
        if name == path:
            return text
        raise FileNotFoundError(2, "No such file or directory", name)
    return load_config(parse_command_line(list(argv) or ["--config=" + path]), ENV, read)


def planted(directory, mode=0o644, owner=None, name="idle_culler_config.py"):
    """A config file such as another user could put in a shared working directory."""
    secret = directory / "secret"
    secret.write_text("root-only-secret-value\n")
    path = directory / name
    path.write_text("c.IdleCuller.timeout = 1234\n"
                    "c.IdleCuller.server_url_base = 'http://127.0.0.1:9/'\n"
                    "c.IdleCuller.api_token_file = %r\n"
                    "c.IdleCuller.metrics_file = %r\n" % (str(secret),
                                                           str(directory / "overwritten")))
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, owner, -1)
    return path


# --- 1. which files are obeyed --------------------------------------------------------------------

@pytest.mark.parametrize("mode,owner,why", [
    (0o666, None, "writable by group and others"),
    (0o620, None, "writable by group"),
    pytest.param(0o644, NOBODY, "owned by uid 65534", marks=needs_root),
])
def test_working_directory_config_of_another_user_is_ignored_with_a_warning(
        tmp_path, monkeypatch, mode, owner, why):
    planted(tmp_path, mode, owner)
    monkeypatch.chdir(tmp_path)
    config = load_files([])
    assert config.config_file is None and config.culling.timeout == 600
    assert config.hub.token == TOKEN and config.hub.server_url_base is None
    assert config.metrics_file is None
    warnings = [w for w in config.warnings if "idle_culler_config.py" in w]
    assert len(warnings) == 1
    assert why in warnings[0] and "is ignored" in warnings[0]
    assert "mode %04o" % mode in warnings[0] and "owner uid" in warnings[0]


def test_working_directory_config_of_the_culler_user_is_read(tmp_path, monkeypatch):
    path = tmp_path / "idle_culler_config.py"
    path.write_text("c.IdleCuller.timeout = 1234\n")
    os.chmod(path, 0o600)
    monkeypatch.chdir(tmp_path)
    config = load_files([])
    assert config.culling.timeout == 1234 and config.config_file == "idle_culler_config.py"
    assert not [w for w in config.warnings if "idle_culler_config.py" in w]


@pytest.mark.parametrize("mode,owner", [(0o666, None), (0o620, None),
                                        pytest.param(0o644, NOBODY, marks=needs_root)])
def test_named_config_file_that_fails_the_check_is_an_error(tmp_path, mode, owner):
    for name in ("c.ini", "c.py"):
        path = planted(tmp_path, mode, owner, name=name)
        if name == "c.ini":
            path.write_text("[culler]\ntimeout = 1234\n")
        with pytest.raises(ConfigError) as info:
            load_files(["--config=%s" % path])
        message = str(info.value)
        assert str(path) in message and "mode %04o" % mode in message
        assert "chown" in message or "chmod" in message


def test_named_untrusted_config_file_exits_78(tmp_path, capsys):
    path = planted(tmp_path, 0o666, name="c.py")
    assert main(["--config=%s" % path, "--show-config"], ENV) == EXIT_CONFIG
    assert str(path) in capsys.readouterr().err


@pytest.mark.parametrize("mode,owner", [(0o666, None), (0o640 | 0o020, None),
                                        pytest.param(0o600, NOBODY, marks=needs_root)])
def test_token_file_that_fails_the_check_is_an_error(tmp_path, mode, owner):
    path = tmp_path / "token"
    path.write_text("planted-token-value\n")
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, owner, -1)
    for argv, env in ((["--api-token-file=%s" % path], {}),
                      ([], {"JUPYTERHUB_IDLE_CULLER_API_TOKEN_FILE": str(path)})):
        with pytest.raises(ConfigError) as info:
            load_files(argv, env)
        message = str(info.value)
        assert str(path) in message and "mode %04o" % mode in message
        assert "planted" not in message


def test_token_file_of_the_culler_user_is_read(tmp_path):
    path = tmp_path / "token"
    path.write_text("good-token-value\n")
    os.chmod(path, 0o600)
    assert load_files(["--api-token-file=%s" % path], {}).hub.token == "good-token-value"


def test_untrusted_packaged_default_config_file_is_an_error():
    def read(path):
        if path == DEFAULT_CONFIG_FILE:
            raise sources.UntrustedFile("owner uid 1000 (alice), mode 0664: writable by group")
        raise FileNotFoundError(2, "No such file or directory", path)
    with pytest.raises(ConfigError, match=DEFAULT_CONFIG_FILE + ".*writable by group"):
        load_config(parse_command_line([]), ENV, read)


def test_config_file_larger_than_the_bound_is_refused_unread(tmp_path):
    path = tmp_path / "c.ini"
    path.write_text("[culler]\n" + "; padding\n" * 200000)
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        load_files(["--config=%s" % path])


# --- 2. the .py file: bounded ---------------------------------------------------------------------

@pytest.mark.timeout(10)
@pytest.mark.parametrize("value,needle", [
    ("9" * 20000, "digits"),
    ("0x" + "f" * 20000, "digits"),
    ("+".join(["1"] * 200000), "nested"),
    ("*".join(["99999999999999999999"] * 40000), "nested"),
    ("99999999 * 99999999 * 99999999 * 99999999 // 7", "too large"),
    ("[" * 5000 + "]" * 5000, "nested"),
    ("'" + "x" * 100000 + "'", "characters"),
    ("(" * 300 + "1" + ")" * 300, "nested"),
])
def test_python_config_abuse_is_a_config_error_quickly(value, needle):
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_text("c.py", "c = get_config()\nc.IdleCuller.timeout = %s\n" % value)
    assert needle in str(info.value) and "c.py" in str(info.value)
    assert time.monotonic() - start < 5


@pytest.mark.timeout(10)
@pytest.mark.parametrize("text", [
    "c.IdleCuller.timeout = " + "99999999999 * " * 150000 + "1\n",  # 2 MB of big-int arithmetic
    "c.IdleCuller.timeout = 1\n" + "# padding\n" * 120000,
])
def test_python_config_file_over_the_size_bound_is_refused(tmp_path, text):
    path = tmp_path / "c.py"
    path.write_text(text)
    start = time.monotonic()
    with pytest.raises(ConfigError, match="larger than 1 MiB"):
        load_files(["--config=%s" % path])
    assert time.monotonic() - start < 5


@pytest.mark.timeout(10)
def test_python_config_abuse_exits_78_with_a_message(tmp_path, capsys):
    path = tmp_path / "c.py"
    path.write_text("c.IdleCuller.timeout = 0x%s\n" % ("f" * 20000))
    assert main(["--config=%s" % path, "--show-config"], ENV) == EXIT_CONFIG
    assert "configuration error" in capsys.readouterr().err


def test_python_config_plain_values_and_arithmetic_still_load():
    config = load_text("c.py", "c.IdleCuller.timeout = 7 * 24 * 3600\n"
                               "c.IdleCuller.max_age = -(-3600)\n"
                               "c.IdleCuller.url = 'http://127.0.0.1:8081/hub/api'\n")
    assert (config.culling.timeout, config.culling.max_age) == (604800, 3600)


# --- 3. rules in the .py file ---------------------------------------------------------------------

PY_RULES = """\
c = get_config()
c.IdleCuller.timeout = 3600
c.IdleCuller.rules = {
    "gpu": {"profiles": "gpu-*", "timeout": "15m"},
    "staff": {"groups": ["staff", "admins"], "cull": False},
    "vip": {"user_options": {"tier": "vip*", "size": "large"}, "max_age": 0,
            "check_kernels": True, "server_names": ["", "big-*"]},
    "long": {"users": "guest-*", "user_timeout": 7200, "user_max_age": "2d"},
}
"""
INI_RULES = """\
[culler]
timeout = 3600
[rule:gpu]
profiles = gpu-*
timeout = 15m
[rule:staff]
groups = staff, admins
cull = false
[rule:vip]
user_options = tier=vip*, size=large
max_age = 0
check_kernels = true
server_names = "", big-*
[rule:long]
users = guest-*
user_timeout = 7200
user_max_age = 2d
"""


def test_python_rules_give_the_same_settings_as_the_ini_file():
    argv = ["--server-url-base=http://127.0.0.1:8000"]
    from_py = load_text("c.py", PY_RULES, ["--config=c.py"] + argv)
    from_ini = load_text("c.ini", INI_RULES, ["--config=c.ini"] + argv)
    assert from_py.culling == from_ini.culling
    assert [rule.name for rule in from_py.culling.rules] == ["gpu", "staff", "vip", "long"]


def test_python_rules_in_the_working_directory_file_need_no_option(tmp_path, monkeypatch):
    (tmp_path / "idle_culler_config.py").write_text(
        'c.IdleCuller.rules = {"gpu": {"profiles": "gpu-*", "timeout": "15m"}}\n')
    monkeypatch.chdir(tmp_path)
    (rule,) = load_files([]).culling.rules
    assert (rule.name, rule.profiles, rule.timeout) == ("gpu", ("gpu-*",), 900)


@pytest.mark.parametrize("py_rule,ini_rule", [
    ('{"server_names": "gpu-*", "timout": 900}', "server_names = gpu-*\ntimout = 900"),
    ('{"server_names": "gpu-["}', "server_names = gpu-["),
    ('{"timeout": 900}', "timeout = 900"),
    ('{"users": "a*", "timeout": 0}', "users = a*\ntimeout = 0"),
    ('{"users": "a*", "cull": "maybe"}', "users = a*\ncull = maybe"),
])
def test_python_rule_errors_are_the_ini_errors(py_rule, ini_rule):
    with pytest.raises(ConfigError) as from_py:
        load_text("c.py", "c.IdleCuller.rules = {'gpu': %s}\n" % py_rule)
    with pytest.raises(ConfigError) as from_ini:
        load_text("c.ini", "[rule:gpu]\n%s\n" % ini_rule)
    py_where, _, py_message = str(from_py.value).partition("]: ")
    ini_where, _, ini_message = str(from_ini.value).partition("]: ")
    assert py_message == ini_message
    assert py_where == "config file c.py: line 1: rules['gpu'"
    assert "did you mean timeout?" in py_message or "timout" not in py_rule


@pytest.mark.parametrize("rules,needle", [
    ('[{"users": "a*"}]', "a dict"),
    ('{"gpu": "users=a*"}', "a dict"),
    ('{1: {"users": "a*"}}', "rule name"),
    ('{"gpu": {"users": None}}', "'users'"),
    ('{"gpu": {"users": 1.5}}', "'users'"),
    ('{"gpu": {"users": ["a", ["b"]]}}', "'users'"),
    ('{"gpu": {"users": ["a,b"]}}', "','"),
    ('{"gpu": {"users": {"a": "b"}}}', "'users'"),
    ('{"gpu": {"user_options": {"tier": 1}}}', "'user_options'"),
    ('{"gpu": {"users": "a*", "timout": [900]}}', "(did you mean timeout?)"),
    ('{"gpu": {"users": "a*"}, "gpu": {"users": "b*"}}', "twice"),
])
def test_python_rules_of_the_wrong_shape_are_refused_clearly(rules, needle):
    with pytest.raises(ConfigError) as info:
        load_text("c.py", "c.IdleCuller.rules = %s\n" % rules)
    assert needle in str(info.value) and "line 1" in str(info.value)


def test_python_rule_option_points_at_rules():
    with pytest.raises(ConfigError, match=r"c.IdleCuller.rules = \{"):
        load_text("c.py", "c.IdleCuller.rule = ['gpu:profiles=gpu-*,timeout=15m']\n")


# --- 4. migration errors that point at the fix ----------------------------------------------------

@pytest.mark.parametrize("text,line", [
    ("c = get_config()\ndef my_arbiter(user, server):\n    return True\n"
     "c.IdleCuller.cull_arbiter_hook = my_arbiter\n", 4),
    ("from mymodule import my_arbiter\nc = get_config()\n"
     "c.IdleCuller.cull_arbiter_hook = my_arbiter\n", 3),
    ("import mymodule\nc.IdleCuller.cull_arbiter_hook = mymodule.decide\n", 2),
    ("c = get_config()\ndef my_arbiter(user, server):\n    return True\n", 2),
    ("c = get_config()\nc.IdleCuller.timeout = 600\n"
     "c.IdleCuller.cull_arbiter_hook = lambda *a: True\n", 3),
])
def test_a_hook_anywhere_gets_the_hook_message(text, line):
    with pytest.raises(ConfigError) as info:
        load_text("c.py", text)
    message = str(info.value)
    assert "line %d:" % line in message and "cull_arbiter_hook" in message
    assert "never runs" in message and "c.IdleCuller.rules" in message
    assert "[rule:NAME]" in message


@pytest.mark.parametrize("text,line,variable", [
    ("import os\nc.IdleCuller.timeout = int(os.environ['T'])\n", 2,
     "JUPYTERHUB_IDLE_CULLER_TIMEOUT"),
    ("import os\nc = get_config()\nc.IdleCuller.url = os.getenv('HUB')\n", 3,
     "JUPYTERHUB_IDLE_CULLER_URL"),
    ("from os import environ\nc.IdleCuller.cull_users = environ.get('X') == '1'\n", 2,
     "JUPYTERHUB_IDLE_CULLER_CULL_USERS"),
    ("import os\nc = get_config()\n", 1, "JUPYTERHUB_IDLE_CULLER_"),
])
def test_the_environment_in_a_py_file_points_at_the_variables(text, line, variable):
    with pytest.raises(ConfigError) as info:
        load_text("c.py", text)
    message = str(info.value)
    assert "line %d:" % line in message and variable in message
    assert "environment" in message


@pytest.mark.timeout(10)
@pytest.mark.parametrize("value", ["+".join(["1"] * 200000), "-" * 100000 + "1",
                                   "[" * 5000 + "]" * 5000, "(" * 300 + "1" + ")" * 300])
def test_deep_values_never_reach_pythons_parser(monkeypatch, value):
    """Python 3.9's parser crashes the process (a segfault) on ``1+1+...+1`` long enough."""
    real_parse = pyconfig.ast.parse

    def parse(source, *args, **kwargs):
        assert kwargs.get("filename") != "c.py", "the config file reached ast.parse"
        return real_parse(source, *args, **kwargs)
    monkeypatch.setattr(pyconfig.ast, "parse", parse)
    with pytest.raises(ConfigError, match="nested"):
        load_text("c.py", "c.IdleCuller.timeout = %s\n" % value)
