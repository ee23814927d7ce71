"""Option parsing in every spelling, precedence, config files, and the token's secrecy."""

import codecs
import pathlib
import threading
from dataclasses import fields
from datetime import datetime, timedelta, timezone

import pytest

from idle_culler_daemon.config import (
    CullSettings,
    RuleSettings,
    load_config,
    parse_rule_option,
    relaxing_rules,
    show_config,
    value_of,
)
from idle_culler_daemon.converters import (
    boolean,
    entries,
    option_patterns,
    patterns,
    server_patterns,
    text,
)
from idle_culler_daemon.errors import ConfigError
from idle_culler_daemon.model import Server, User
from idle_culler_daemon.options import (
    DEFAULT_CONFIG_FILE,
    GROUPS,
    OPTIONS,
    OPTIONS_BY_NAME,
    RULE_KEYS,
    build_parser,
    env_names,
    generate_config,
    parse_command_line,
)
from idle_culler_daemon.policy import Action, judge_server
from idle_culler_daemon.sources import read_text
from tests.fakes import NOW

TOKEN = "s3cr3t-token-value"
ENV = {"JUPYTERHUB_API_TOKEN": TOKEN}


def no_files(path):
    raise FileNotFoundError(2, "No such file or directory", path)


def load(argv, env=ENV, files=None):
    files = files or {}

    def read(path):
        if path in files:
            return files[path]
        return no_files(path)

    return load_config(parse_command_line(argv), env, read)


def test_zero_to_jupyterhub_command_line():
    config = load(["--url=http://127.0.0.1:8081/hub/api", "--timeout=3600", "--cull-every=600",
                   "--concurrency=10", "--cull-users", "--remove-named-servers",
                   "--cull-admin-users=false", "--max-age=0"])
    assert config.hub.api_url == "http://127.0.0.1:8081/hub/api"
    assert (config.culling.timeout, config.cull_every, config.concurrency) == (3600, 600, 10)
    assert config.culling.cull_users and config.culling.remove_named_servers
    assert not config.culling.cull_admin_users and config.culling.max_age == 0


def test_littlest_jupyterhub_command_line():
    config = load(["--timeout=600", "--cull-every=60", "--concurrency=5", "--max-age=0",
                   "--cull-users"])
    assert (config.culling.timeout, config.cull_every, config.concurrency) == (600, 60, 5)
    assert config.culling.cull_users


def test_reference_2_command_line():
    config = load(["--cull-users=True", "--cull-named-servers=false", "--api-page-size=200"])
    assert config.culling.cull_users and not config.culling.cull_named_servers
    assert config.hub.page_size == 200


def test_reference_1_command_line_with_underscores_and_logging():
    config = load(["--cull_users", "--cull-every=0", "--logging=debug"])
    assert config.culling.cull_users and config.log_level == "DEBUG"
    assert config.cull_every == 300  # 0 means timeout // 2


def test_traitlets_command_line():
    config = load(["--IdleCuller.timeout=3600", "--IdleCuller.cull_users=True"])
    assert config.culling.timeout == 3600 and config.culling.cull_users


@pytest.mark.parametrize("word,expected", [("true", True), ("YES", True), ("1", True),
                                           ("On", True), ("false", False), ("No", False),
                                           ("0", False), ("OFF", False)])
def test_booleans_in_any_case(word, expected):
    assert load(["--cull-users=" + word]).culling.cull_users is expected


def test_bare_flag_means_true_and_separate_value_is_accepted():
    assert load(["--dry-run"]).dry_run is True
    assert load(["--timeout", "42"]).culling.timeout == 42


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        parse_command_line(["--cull-everything"])
    assert info.value.code == 2
    assert "--cull-everything" in capsys.readouterr().err


def test_abbreviations_are_refused():
    with pytest.raises(SystemExit):
        parse_command_line(["--time=5"])


@pytest.mark.parametrize("argv,named", [
    (["--timeout=soon"], "--timeout"), (["--cull-users=maybe"], "--cull-users"),
    (["--url=ftp://hub"], "--url"), (["--concurrency=-1"], "--concurrency"),
    (["--log-level=chatty"], "--log-level"), (["--request-timeout=0"], "--request-timeout"),
    (["--timeout=0"], "--timeout"),
])
def test_bad_values_are_config_errors_naming_option_and_value(argv, named):
    with pytest.raises(ConfigError) as info:
        load(argv)
    assert named in str(info.value)


def test_precedence_cli_over_env_over_file_over_default():
    files = {"c.ini": "[culler]\ntimeout = 100\nmax_age = 7\nconcurrency = 3\n"}
    env = dict(ENV, JUPYTERHUB_IDLE_CULLER_TIMEOUT="200", JUPYTERHUB_IDLE_CULLER_MAX_AGE="8")
    config = load(["--config=c.ini", "--timeout=300"], env, files)
    assert config.culling.timeout == 300          # command line
    assert config.culling.max_age == 8            # environment
    assert config.concurrency == 3                # file
    assert config.culling.cull_users is False     # default


def test_url_comes_from_jupyterhub_api_url_and_loses_its_trailing_slash():
    config = load([], dict(ENV, JUPYTERHUB_API_URL="http://10.0.0.1:8081/hub/api/"))
    assert config.hub.api_url == "http://10.0.0.1:8081/hub/api"
    assert load([]).hub.api_url == "http://127.0.0.1:8081/hub/api"


def test_request_timeout_from_the_reference_environment_variable():
    assert load([], dict(ENV, JUPYTERHUB_REQUEST_TIMEOUT="12")).hub.read_timeout == 12.0
    assert load([]).hub.read_timeout == 60.0


def test_concurrency_zero_means_64_with_a_warning():
    config = load(["--concurrency=0"])
    assert config.concurrency == 64 and config.warnings


def test_python_config_file_is_read_without_being_executed():
    files = {"c.py": "c = get_config()\nc.IdleCuller.timeout = 1234\n"
                     "c.IdleCuller.cull_users = True\n"}
    config = load(["--config=c.py"], files=files)
    assert config.culling.timeout == 1234 and config.culling.cull_users


def test_python_config_file_with_code_is_refused():
    files = {"c.py": "import sys\nc.IdleCuller.timeout = len(sys.argv)\n"}
    with pytest.raises(ConfigError, match="line 1: only 'c.IdleCuller.<name> = <literal>'"):
        load(["--config=c.py"], files=files)


def test_ini_unknown_key_and_section_are_named():
    with pytest.raises(ConfigError, match="'timeuot'"):
        load(["--config=c.ini"], files={"c.ini": "[culler]\ntimeuot = 5\n"})
    with pytest.raises(ConfigError, match=r"\[cullers\]"):
        load(["--config=c.ini"], files={"c.ini": "[cullers]\ntimeout = 5\n"})


def test_missing_config_file_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot read"):
        load(["--config=/nonexistent.ini"])


def test_token_lookup_order_file_then_credentials_then_env():
    files = {"/t": "from-file\n", "/creds/api-token": " from-creds "}
    env = dict(ENV, CREDENTIALS_DIRECTORY="/creds")
    assert load(["--api-token-file=/t"], env, files).hub.token == "from-file"
    assert load([], env, files).hub.token == "from-creds"
    assert load([], dict(ENV, CREDENTIALS_DIRECTORY="/empty"), files).hub.token == TOKEN


def test_missing_token_names_the_three_places():
    with pytest.raises(ConfigError) as info:
        load([], {})
    text = str(info.value)
    assert "--api-token-file" in text and "CREDENTIALS_DIRECTORY" in text
    assert "JUPYTERHUB_API_TOKEN" in text


def test_token_is_not_in_repr_or_describe():
    config = load([])
    assert TOKEN not in repr(config) and TOKEN not in str(config.describe())


def test_every_option_has_an_environment_variable_or_is_an_action():
    names = env_names()
    for option in OPTIONS:
        assert option.cli_only or "JUPYTERHUB_IDLE_CULLER_" + option.name.upper() in names


def test_environment_variables_set_every_kind_of_option():
    env = dict(ENV, JUPYTERHUB_IDLE_CULLER_CULL_USERS="yes",
               JUPYTERHUB_IDLE_CULLER_LOG_FORMAT="json",
               JUPYTERHUB_IDLE_CULLER_EXCLUDE_USERS="root,ops-*")
    config = load([], env)
    assert config.culling.cull_users and config.log_format == "json"
    assert config.culling.rules[0].users == ("root", "ops-*")


def test_generate_config_lists_every_file_option_and_loads_back():
    text = generate_config()
    for option in OPTIONS:
        if option.in_file and not option.cli_only:
            assert "# %s = " % option.name in text
    assert "[rule:gpu]" in text
    assert load(["--config=g.ini"], files={"g.ini": text}).culling.timeout == 600


def test_generate_config_loads_back_with_any_one_line_uncommented():
    lines = generate_config().splitlines()
    settings = [index for index, line in enumerate(lines) if line.startswith("# ")]
    assert len(settings) == sum(1 for o in OPTIONS if o.in_file and not o.cli_only)
    for index in settings:
        edited = lines[:index] + [lines[index][2:]] + lines[index + 1:]
        config = load(["--config=g.ini"], files={"g.ini": "\n".join(edited)})
        assert config.culling.timeout == 600, lines[index]


def test_empty_value_in_an_ini_file_means_the_default():
    files = {"c.ini": "[culler]\nurl =\nrequest_timeout =\nexclude_users =\n"}
    config = load(["--config=c.ini"], files=files)
    assert config.hub.api_url == "http://127.0.0.1:8081/hub/api"
    assert config.hub.read_timeout == 60 and config.culling.rules == ()


@pytest.mark.parametrize("path,text", [
    ("c.ini", "\ufeff[culler]\ntimeout = 1200\n"),
    ("c.py", "\ufeffc = get_config()\nc.IdleCuller.timeout = 1200\n"),
])
def test_config_file_starting_with_a_byte_order_mark_loads(path, text):
    assert load(["--config=" + path], files={path: text}).culling.timeout == 1200


def test_python_config_file_allows_constant_arithmetic_on_numbers():
    files = {"c.py": "c = get_config()\nc.IdleCuller.timeout = 60 * 60\n"
                     "c.IdleCuller.max_age = 7 * 24 * 3600\n"
                     "c.IdleCuller.cull_every = (60 * 60) // 2 - -10\n"}
    config = load(["--config=c.py"], files=files)
    assert (config.culling.timeout, config.culling.max_age) == (3600, 604800)
    assert config.cull_every == 1810


@pytest.mark.parametrize("value", ["10 ** 10 ** 10", '"x" * 10 ** 9', 'int("5")', "T * 2",
                                   "__import__('os').getpid()", "[1] * 3", "1 / 0"])
def test_python_config_file_refuses_anything_but_literals_and_number_arithmetic(value):
    files = {"c.py": "c = get_config()\nc.IdleCuller.timeout = %s\n" % value}
    with pytest.raises(ConfigError, match="line 2: the value of timeout must be a literal"):
        load(["--config=c.py"], files=files)


def test_python_config_file_none_means_the_default():
    files = {"c.py": "c.IdleCuller.url = None\nc.IdleCuller.request_timeout = None\n"}
    config = load(["--config=c.py"], dict(ENV, JUPYTERHUB_API_URL="http://hub:8081/hub/api/"),
                  files=files)
    assert config.hub.api_url == "http://hub:8081/hub/api" and config.hub.read_timeout == 60


@pytest.mark.parametrize("spelling,level", [
    ("WARN", "WARNING"), ("warn", "WARNING"), ("Warning", "WARNING"), ("CRITICAL", "CRITICAL"),
    ("FATAL", "CRITICAL"), ("30", "WARNING"), ("10", "DEBUG"), ("error", "ERROR")])
def test_log_level_accepts_every_traitlets_spelling(spelling, level):
    assert load(["--log-level=" + spelling]).log_level == level
    assert load(["--IdleCuller.log_level=" + spelling]).log_level == level
    assert load([], dict(ENV, JUPYTERHUB_IDLE_CULLER_LOG_LEVEL=spelling)).log_level == level
    files = {"c.py": "c.Application.log_level = %r\n" % spelling}
    assert load(["--config=c.py"], files=files).log_level == level


def test_log_level_from_a_python_file_as_a_number_or_a_bad_one():
    assert load(["--config=c.py"], files={"c.py": "c.Application.log_level = 30\n"}
                ).log_level == "WARNING"
    with pytest.raises(ConfigError, match="--log-level"):
        load(["--log-level=35"])


def test_cull_arbiter_hook_is_refused_naming_the_rule_keys_that_replace_it():
    files = {"c.py": "c = get_config()\nc.IdleCuller.cull_arbiter_hook = my_hook\n"}
    with pytest.raises(ConfigError) as info:
        load(["--config=c.py"], files=files)
    message = str(info.value)
    assert "line 2" in message and "never runs" in message
    assert all(key in message for key in ("users", "groups", "server_names", "[rule:NAME]"))


def test_python_config_file_of_another_class_is_refused_naming_it():
    with pytest.raises(ConfigError, match="c.JupyterHub.services"):
        load(["--config=c.py"], files={"c.py": "c.JupyterHub.services = []\n"})


def test_idle_culler_config_py_in_the_working_directory_is_read_when_present():
    files = {"idle_culler_config.py": "c.IdleCuller.timeout = 60 * 20\n",
             "other.ini": "[culler]\ntimeout = 700\n"}
    config = load([], files=files)
    assert config.culling.timeout == 1200 and config.config_file == "idle_culler_config.py"
    assert load(["--config=other.ini"], files=files).culling.timeout == 700
    assert load([]).config_file is None  # absent: nothing is read


def test_rule_option_continues_lists_over_commas():
    rule = parse_rule_option("staff:groups=staff,admins,cull=false", "--rule")
    assert rule.groups == ("staff", "admins") and rule.cull is False


@pytest.mark.parametrize("text,needle", [
    ("gpu:server_names=gpu-*,colour=red", "'colour'"),
    ("gpu:server_names=gpu-[", "bad pattern"),
    ("gpu:timeout=900", "at least one"),
    ("nocolon", "NAME:key=value"),
])
def test_rule_option_errors_name_the_key(text, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_rule_option(text, "--rule")


def test_rules_in_file_and_options_come_in_order():
    files = {"c.ini": "[culler]\ntimeout=3600\n[rule:gpu]\nserver_names = gpu-*\ntimeout = 900\n"}
    config = load(["--config=c.ini", "--exclude-groups=staff", "--rule=guests:users=guest-*"],
                  files=files)
    assert [rule.name for rule in config.culling.rules] == ["exclude-groups", "guests", "gpu"]


def test_rule_section_with_unknown_key_names_section_and_key():
    files = {"c.ini": "[rule:gpu]\nserver_names = gpu-*\ntimeoutt = 900\n"}
    with pytest.raises(ConfigError) as info:
        load(["--config=c.ini"], files=files)
    assert "[rule:gpu]" in str(info.value) and "'timeoutt'" in str(info.value)


@pytest.mark.parametrize("key", ["timeout", "user_timeout"])
def test_rule_idle_limit_of_zero_is_refused_like_the_global_timeout(key):
    with pytest.raises(ConfigError, match=key):
        parse_rule_option("guests:users=guest-*,%s=0" % key, "--rule")


# --- errors that teach -------------------------------------------------------------------------

@pytest.mark.parametrize("argument,flag", [("--timout=5", "--timeout"),
                                           ("--cull-evry=5", "--cull-every"),
                                           ("--cull_user", "--cull-users"),
                                           ("--IdleCuller.dry_runn=1", "--dry-run"),
                                           ("--time=5", "--timeout")])
def test_misspelt_option_says_did_you_mean(capsys, argument, flag):
    with pytest.raises(SystemExit) as info:
        parse_command_line([argument])
    assert info.value.code == 2
    assert "%s (did you mean %s?)" % (argument, flag) in capsys.readouterr().err


def test_option_far_from_any_name_gets_no_suggestion(capsys):
    with pytest.raises(SystemExit):
        parse_command_line(["--zzzzzz"])
    assert "did you mean" not in capsys.readouterr().err


@pytest.mark.parametrize("name,text,suggested", [
    ("c.ini", "[culler]\ntimout = 5\n", "(did you mean timeout?)"),
    ("c.ini", "[culler]\ncull-user = yes\n", "(did you mean cull_users?)"),
    ("c.ini", "[rule:gpu]\nserver_name = gpu-*\n", "(did you mean server_names?)"),
    ("c.py", "c.IdleCuller.timout = 5\n", "(did you mean timeout?)"),
])
def test_misspelt_file_and_rule_keys_say_did_you_mean(name, text, suggested):
    with pytest.raises(ConfigError) as info:
        load(["--config=" + name], files={name: text})
    assert suggested in str(info.value)


def test_misspelt_rule_key_on_the_command_line_says_did_you_mean():
    with pytest.raises(ConfigError, match=r"'user_timout' \(did you mean user_timeout\?\)"):
        parse_rule_option("guests:users=guest-*,user_timout=60", "--rule")


def test_unknown_environment_variable_is_a_warning_naming_the_closest_one():
    env = dict(ENV, JUPYTERHUB_IDLE_CULLER_TIMOUT="5", JUPYTERHUB_IDLE_CULLER_XYZZY_PLUGH="1")
    config = load([], env)
    assert config.culling.timeout == 600
    assert ("unknown environment variable JUPYTERHUB_IDLE_CULLER_TIMOUT is ignored (did you "
            "mean JUPYTERHUB_IDLE_CULLER_TIMEOUT?)") in config.warnings
    assert "unknown environment variable JUPYTERHUB_IDLE_CULLER_XYZZY_PLUGH is ignored" \
        in config.warnings


def test_config_file_that_is_not_utf8_is_a_config_error_naming_the_byte():
    def read(path):
        return b"[culler]\ntimeout = 60 \xff\n".decode("utf-8")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xff at offset 22\)"):
        load_config(parse_command_line(["--config=c.ini"]), ENV, read)


# --- the default config file and --show-config ------------------------------------------------

def test_default_config_file_is_read_when_it_exists():
    files = {DEFAULT_CONFIG_FILE: "[culler]\ntimeout = 1234\n"}
    config = load([], files=files)
    assert config.culling.timeout == 1234 and config.config_file == DEFAULT_CONFIG_FILE
    assert load([]).config_file is None  # absent: no file, no error


def test_named_config_file_wins_and_an_empty_name_reads_no_file():
    files = {DEFAULT_CONFIG_FILE: "[culler]\ntimeout = 1234\n", "o.ini": "[culler]\n"}
    assert load(["--config=o.ini"], files=files).culling.timeout == 600
    assert load(["--config="], files=files).config_file is None
    env = dict(ENV, JUPYTERHUB_IDLE_CULLER_CONFIG="")
    assert load([], env, files).culling.timeout == 600
    with pytest.raises(ConfigError, match="no such file"):
        load(["--config=/etc/missing.ini"], files=files)


def test_show_config_names_the_source_of_every_value_and_redacts_the_token():
    files = {DEFAULT_CONFIG_FILE: "[culler]\ntimeout = 100\nmax_age = 7\n",
             "/creds/api-token": TOKEN}
    env = {"CREDENTIALS_DIRECTORY": "/creds", "JUPYTERHUB_IDLE_CULLER_MAX_AGE": "8",
           "JUPYTERHUB_API_URL": "http://10.0.0.1:8081/hub/api"}
    text = show_config(load(["--timeout=300", "--rule=gpu:server_names=gpu-*,timeout=60"],
                            env, files))
    lines = text.splitlines()
    assert "timeout = 300 ; command line (overrides the config file's value)" in lines
    assert ("max_age = 8 ; environment JUPYTERHUB_IDLE_CULLER_MAX_AGE (overrides the config "
            "file's value)") in lines
    assert "url = http://10.0.0.1:8081/hub/api ; $JUPYTERHUB_API_URL" in lines
    assert "concurrency = 10 ; default" in lines
    assert "cull_every = 150 ; default (0: half of --timeout)" in lines
    assert "# config = %s ; default (the file exists)" % DEFAULT_CONFIG_FILE in lines
    assert "# api token: <redacted> (file /creds/api-token ($CREDENTIALS_DIRECTORY))" in lines
    assert "# rule gpu: server_names=gpu-*, timeout=60" in lines
    assert TOKEN not in text
    shown = [line.split(" = ")[0].lstrip("# ") for line in lines if " = " in line]
    assert sorted(shown) == sorted(o.name for o in OPTIONS if not o.cli_only and o.name != "rule")


def test_show_config_loads_without_a_token_and_says_so():
    config = load_config(parse_command_line([]), {}, no_files, token_required=False)
    assert "# api token: - (none: no API token:" in show_config(config)


# --- --help ---------------------------------------------------------------------------------

def test_every_option_has_a_help_group():
    # A new option must say where --help shows it: add group="..." (a key of GROUPS).
    missing = [option.name for option in OPTIONS if option.group not in GROUPS]
    assert missing == []


def test_help_shows_the_groups_in_order_and_points_to_the_man_page():
    text = build_parser().format_help()
    positions = [text.index("\n%s:\n" % title) for title in GROUPS.values()]
    assert positions == sorted(positions)
    hub_part = text.split("\nhub connection:\n")[1].split("\n\n")[0]
    assert "--url" in hub_part and "--timeout" not in hub_part
    assert "man jupyterhub-idle-culler" in " ".join(text.split())


# --- durations ----------------------------------------------------------------------------

@pytest.mark.parametrize("text,seconds", [
    ("90", 90), ("90s", 90), ("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("7d", 604800),
    ("2w", 1209600), ("1d12h", 129600), (" 2H ", 7200), ("1w2d3h4m5s", 788645),
])
def test_durations_on_the_command_line(text, seconds):
    assert load(["--timeout=" + text]).culling.timeout == seconds


def test_durations_in_every_source_and_every_seconds_option():
    env = dict(ENV, JUPYTERHUB_IDLE_CULLER_MAX_AGE="8h",
               JUPYTERHUB_IDLE_CULLER_REQUEST_TIMEOUT="2m")
    files = {"c.ini": "[culler]\ncull_every = 5m\n[rule:gpu]\nprofiles = gpu-*\n"
                      "timeout = 15m\nmax_age = 1d\nuser_timeout = 2w\nuser_max_age = 30d\n",
             "c.py": "c.IdleCuller.timeout = '1h30m'\nc.IdleCuller.max_age = 7200\n"}
    config = load(["--config=c.ini", "--timeout=1h"], env, files)
    assert (config.culling.timeout, config.cull_every, config.culling.max_age) == (3600, 300,
                                                                                   28800)
    assert config.hub.read_timeout == 120.0
    rule = config.culling.rules[0]
    assert (rule.timeout, rule.max_age, rule.user_timeout, rule.user_max_age) == (
        900, 86400, 1209600, 2592000)
    from_py = load(["--config=c.py"], files=files)
    assert (from_py.culling.timeout, from_py.culling.max_age) == (5400, 7200)
    assert parse_rule_option("g:users=g-*,timeout=90s", "--rule").timeout == 90


def test_request_timeout_keeps_fractions_and_takes_durations():
    assert load(["--request-timeout=0.5"]).hub.read_timeout == 0.5
    assert load(["--request-timeout=1m30s"]).hub.read_timeout == 90.0
    assert load([], dict(ENV, JUPYTERHUB_REQUEST_TIMEOUT="45s")).hub.read_timeout == 45.0


@pytest.mark.parametrize("argv,env,named", [
    (["--timeout=5x"], {}, "--timeout"), (["--timeout=1.5h"], {}, "--timeout"),
    (["--timeout=30m1h"], {}, "--timeout"), (["--timeout=1h1h"], {}, "--timeout"),
    (["--cull-every=h"], {}, "--cull-every"), (["--max-age=-1d"], {}, "--max-age"),
    (["--request-timeout=soon"], {}, "--request-timeout"),
    ([], {"JUPYTERHUB_IDLE_CULLER_MAX_AGE": "3 days"}, "--max-age (from environment)"),
])
def test_bad_durations_are_config_errors_naming_the_option(argv, env, named):
    with pytest.raises(ConfigError) as info:
        load(argv, dict(ENV, **env))
    assert named in str(info.value) and "90s, 30m, 1h" in str(info.value)


def test_zero_request_timeout_is_refused_in_any_spelling():
    for value in ("0", "0s", "0m"):
        with pytest.raises(ConfigError, match="--request-timeout"):
            load(["--request-timeout=" + value])


def test_bad_duration_in_a_rule_names_the_rule_and_key():
    with pytest.raises(ConfigError) as info:
        load(["--config=c.ini"], files={"c.ini": "[rule:gpu]\nusers = a\ntimeout = 15 min\n"})
    assert "[rule:gpu]" in str(info.value) and "'timeout'" in str(info.value)


def test_help_and_generated_config_show_the_duration_syntax(capsys):
    with pytest.raises(SystemExit):
        parse_command_line(["--help"])
    assert "1h30m" in " ".join(capsys.readouterr().out.split())
    text = generate_config()
    assert "1h30m" in text.split("[culler]")[0] and "timeout = 15m" in text


# --- profiles and user_options --------------------------------------------------------------

def test_profile_and_user_options_rule_keys():
    files = {"c.ini": "[rule:gpu]\nprofiles = gpu-*, a100\n"
                      "user_options = image=*torch*, size=large, size=xl\ntimeout = 15m\n"}
    rule = load(["--config=c.ini"], files=files).culling.rules[0]
    assert rule.profiles == ("gpu-*", "a100")
    assert rule.user_options == (("image", "*torch*"), ("size", "large"), ("size", "xl"))


def test_rule_option_user_options_continue_over_pairs_until_a_rule_key():
    rule = parse_rule_option("big:user_options=image=*torch*,size=large,timeout=1h", "--rule")
    assert rule.user_options == (("image", "*torch*"), ("size", "large"))
    assert rule.timeout == 3600


@pytest.mark.parametrize("text,needle", [
    ("x:user_options=nokey", "KEY=PATTERN"), ("x:user_options==v", "KEY=PATTERN"),
    ("x:profiles=gpu-[", "bad pattern"), ("x:user_options=a=[b", "bad pattern"),
])
def test_profile_rule_errors_name_the_key(text, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_rule_option(text, "--rule")


# --- check_kernels and the proxy's URL ------------------------------------------------------

def test_check_kernels_without_the_proxy_url_is_refused_naming_the_option():
    for argv in (["--check-kernels"], ["--rule=gpu:profiles=gpu-*,check_kernels=true"]):
        with pytest.raises(ConfigError) as info:
            load(argv)
        assert "--server-url-base" in str(info.value) and "--check-kernels" in str(info.value)


def test_proxy_url_from_a_managed_service_environment_and_the_option_wins():
    public = dict(ENV, JUPYTERHUB_PUBLIC_HUB_URL="https://hub.example.org/jh/hub/",
                  JUPYTERHUB_HOST="")
    assert load(["--check-kernels"], public).hub.server_url_base == "https://hub.example.org"
    host = dict(ENV, JUPYTERHUB_HOST="https://hub.example.org:8443")
    assert load(["--check-kernels"], host).hub.server_url_base == "https://hub.example.org:8443"
    config = load(["--check-kernels", "--server-url-base=http://10.0.0.5:8000/"], public)
    assert config.hub.server_url_base == "http://10.0.0.5:8000" and config.culling.check_kernels


def test_proxy_url_is_checked_and_its_path_ignored_with_a_warning():
    with pytest.raises(ConfigError, match="--server-url-base"):
        load(["--server-url-base=ftp://proxy"])
    config = load(["--server-url-base=https://hub.example.org/jupyter"])
    assert config.hub.server_url_base == "https://hub.example.org"
    assert any("'/jupyter' is ignored" in warning for warning in config.warnings)


# --- the mass-cull guard and the output ------------------------------------------------------

def test_guard_options():
    config = load(["--max-stops-per-pass=10", "--max-stop-fraction=0.5"])
    assert (config.culling.max_stops_per_pass, config.culling.max_stop_fraction) == (10, 0.5)
    assert load([]).culling.max_stop_fraction is None and load([]).culling.max_stops_per_pass == 0
    assert load(["--max-stop-fraction=1"]).culling.max_stop_fraction == 1.0


@pytest.mark.parametrize("argv,named", [
    (["--max-stop-fraction=0"], "--max-stop-fraction"),
    (["--max-stop-fraction=1.5"], "--max-stop-fraction"),
    (["--max-stop-fraction=half"], "--max-stop-fraction"),
    (["--max-stops-per-pass=-3"], "--max-stops-per-pass"),
    (["--output=yaml"], "--output"),
])
def test_bad_guard_and_output_values_are_config_errors(argv, named):
    with pytest.raises(ConfigError, match=named):
        load(argv)


def test_json_output_outside_a_dry_run_once_is_a_warning():
    assert load(["--once", "--dry-run", "--output=json"]).output == "json"
    assert not load(["--once", "--dry-run", "--output=json"]).warnings
    assert any("--output=json" in w for w in load(["--output=json"]).warnings)


@pytest.mark.parametrize("key", ["timeout", "user_timeout"])
@pytest.mark.parametrize("zero", ["0", " 00 ", "+0"])
@pytest.mark.parametrize("source", ["option", "environment", "file"])
def test_rule_idle_limit_of_zero_is_refused_from_every_source(key, zero, source):
    argv, env, files = [], dict(ENV), {}
    if source == "option":
        argv = ["--rule=guests:users=guest-*,%s=%s" % (key, zero)]
    elif source == "environment":
        env["JUPYTERHUB_IDLE_CULLER_RULE"] = "guests:users=guest-*,%s=%s" % (key, zero)
    else:
        argv = ["--config=c.ini"]
        files = {"c.ini": "[rule:guests]\nusers = guest-*\n%s = %s\n" % (key, zero)}
    with pytest.raises(ConfigError, match="%s.*0" % key):
        load(argv, env, files)


def test_rule_age_limit_of_zero_means_off_and_is_accepted():
    rule = parse_rule_option("guests:users=guest-*,max_age=0,user_max_age=0", "--rule")
    assert (rule.max_age, rule.user_max_age) == (0, 0)


def _judge_default_and_named(settings):
    """The verdicts on an idle default server and an idle named server 'lab' of one user."""
    idle = NOW - timedelta(days=30)
    servers = [Server(name, True, started=idle, last_activity=idle) for name in ("", "lab")]
    owner = User("ann", admin=False, groups=(), servers=tuple(servers))
    return [judge_server(owner, one, NOW, settings) for one in servers]


@pytest.mark.parametrize("spelling", ['""', "''", '"", gpu-*'])
@pytest.mark.parametrize("source", ["file", "option"])
def test_rule_server_names_empty_quotes_match_the_default_server(spelling, source):
    if source == "file":
        config = load(["--config=c.ini"], files={
            "c.ini": "[rule:home]\nserver_names = %s\ncull = false\n" % spelling})
    else:
        config = load(["--rule=home:server_names=%s,cull=false" % spelling.replace(" ", "")])
    default, named = _judge_default_and_named(config.culling)
    assert (default.action, default.reason, default.rule) == (Action.KEEP, "excluded", "home")
    assert (named.action, named.rule) == (Action.STOP, "default")


def test_generate_config_rule_examples_load_and_mean_what_their_comments_say():
    rules_part = "; Rules refine" + generate_config().split("; Rules refine")[1]
    uncommented = "\n".join(line[2:] for line in rules_part.splitlines()
                            if line.startswith("; [") or " = " in line)
    # an example asks kernels (check_kernels): that needs the proxy's URL
    config = load(["--config=g.ini", "--server-url-base=https://hub.example.org"],
                  files={"g.ini": uncommented})
    by_name = {rule.name: rule for rule in config.culling.rules}
    home = [rule for rule in config.culling.rules if "" in rule.server_names]
    assert home, "an example rule for the default server"
    default, named = _judge_default_and_named(CullSettings(timeout=600, rules=tuple(home)))
    assert default.rule == home[0].name and named.rule == "default"
    assert by_name["gpu"].server_names == ("gpu-*",) and by_name["staff"].cull is False


def test_readme_rule_example_loads_and_its_default_server_rule_matches_it():
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    example = readme.split("```ini\n", 1)[1].split("```", 1)[0]
    config = load(["--config=r.ini", "--server-url-base=https://hub.example.org"],
                  files={"r.ini": example})
    home = [rule for rule in config.culling.rules if "" in rule.server_names]
    assert home, "the README shows how to match the default server"
    default, named = _judge_default_and_named(CullSettings(timeout=600, rules=tuple(home)))
    assert default.rule == home[0].name and named.rule == "default"


def test_show_config_shows_rules_on_user_options_including_the_readme_example():
    # It raised TypeError (exit 1) on any rule with user_options.
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    example = readme.split("```ini\n", 1)[1].split("```", 1)[0]
    config = load(["--config=r.ini", "--server-url-base=https://hub.example.org",
                   "--rule=big:user_options=image=*torch*,size=large,timeout=1h"],
                  files={"r.ini": example})
    lines = show_config(config).splitlines()
    assert "# rule big: user_options=image=*torch*,size=large, timeout=3600" in lines


@pytest.mark.parametrize("rule,relaxed", [
    ("vip:user_options=tier=vip,cull=false", "cull=false"),
    ("long:profiles=big-*,timeout=2h", "timeout=7200"),
    ("old:profiles=big-*,max_age=0", "max_age=0"),
    ("older:profiles=big-*,max_age=2d", "max_age=172800"),
    ("asks:user_options=kernel=yes,check_kernels=true", "check_kernels=true"),
    ("both:profiles=x,timeout=2h,cull=false", "cull=false, timeout=7200"),
    ("short:profiles=gpu-*,timeout=15m,max_age=8h", None),
    ("staff:groups=staff,cull=false", None),  # groups are the operator's, not the user's
    ("gpu:server_names=gpu-*,timeout=2h", None),
])
def test_rules_on_values_users_choose_that_cull_less_are_found(rule, relaxed):
    config = load(["--timeout=1h", "--max-age=1d", "--rule=" + rule,
                   "--server-url-base=https://hub.example.org"])
    found = relaxing_rules(config.culling)
    assert found == ([(rule.split(":")[0], relaxed)] if relaxed else [])


def test_every_declared_option_reaches_its_field_from_every_source():
    # The settings are built from the declarations by a loop: no option can be read into the
    # wrong field or forgotten. Each option gets a value other than its default.
    samples = {"url": "http://10.1.2.3:8081/hub/api", "request_timeout": "7",
               "api_page_size": "7", "server_url_base": "https://hub.example.org",
               "internal_certs_location": "certs", "api_token_file": "tok",
               "output": "json", "log_level": "DEBUG", "log_format": "json",
               "max_stop_fraction": "0.5", "metrics_address": "::1", "metrics_file": "m.prom",
               "exclude_users": "ann", "exclude_groups": "staff", "rule": "r:users=bob",
               "config": "", "notify_url": "https://hooks.example.org/T/B/key"}
    files = {"tok": TOKEN}
    base = dict(ENV, JUPYTERHUB_PUBLIC_HUB_URL="https://proxy.example.org/hub/")  # for kernels
    for option in OPTIONS:
        if not option.path or option.name == "ssl_enabled":  # ssl needs real files
            continue
        raw = samples[option.name] if option.name in samples else (
            "true" if option.is_flag and not option.default else "false" if option.is_flag
            else "7")
        expected = option.convert(raw) if option.name != "config" else None
        for argv, env in ([["%s=%s" % (option.flag, raw)], base],
                          [[], dict(base, **{option.env_name: raw})]):
            config = load(argv, env, files)
            assert value_of(config, option) == expected, (option.name, argv, env)
            source = dict(config.sources)[option.name]
            assert source.startswith("command line" if argv else "environment"), option.name


def test_rule_keys_are_the_declared_fields_of_rule_settings():
    declared = [item.name for item in fields(RuleSettings) if item.name != "name"]
    assert list(RULE_KEYS) == declared
    text = generate_config()
    for key in declared:
        assert ";   %s: " % key in text, key


# --- tokens that cannot be sent, or cannot be a hub's token (docs/behaviour.md#token-lookup) ---

BAD_TOKENS = {
    "newline": "abcd1234\nsecret99",
    "carriage return": "abcd1234\rsecret99",
    "tab": "abcd1234\tsecret99",
    "NUL": "abcd1234\x00secret99",
    "escape": "abcd1234\x1bsecret99",
    "delete": "abcd1234\x7fsecret99",
    "byte-order mark": "\ufeffabcd1234secret99",
    "zero-width space": "abcd1234\u200bsecret99",
    "space": "abcd1234 secret99",
    "non-ASCII": "abcd1234\u20acsecret99",
    "too short": "abc12",
}


def token_pieces(token, size=5):
    """Every run of ``size`` characters of the token (none may reach a message)."""
    return {token[i:i + size] for i in range(len(token) - size + 1)}


@pytest.mark.parametrize("place", ["file", "credentials", "environment"])
@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
def test_token_that_is_not_a_token_is_a_config_error_without_the_token(place, kind):
    token = BAD_TOKENS[kind]
    env, files, argv = {}, {}, []
    if place == "file":
        argv, files = ["--api-token-file=/t"], {"/t": token + "\n"}
    elif place == "credentials":
        env, files = {"CREDENTIALS_DIRECTORY": "/creds"}, {"/creds/api-token": token}
    else:
        env = {"JUPYTERHUB_API_TOKEN": token}
    with pytest.raises(ConfigError) as info:
        load(argv, env, files)
    message = str(info.value)
    assert not any(piece in message for piece in token_pieces(token)), message
    assert {"file": "/t", "credentials": "api-token",
            "environment": "JUPYTERHUB_API_TOKEN"}[place] in message


def test_credentials_in_the_url_are_dropped_with_a_warning_that_does_not_repeat_them():
    config = load(["--url=http://ops:hunter2secret@127.0.0.1:8081/hub/api/"])
    assert config.hub.api_url == "http://127.0.0.1:8081/hub/api"
    shown = str(config.describe()) + " ".join(config.warnings) + repr(config)
    assert "hunter2secret" not in shown and "ops:" not in shown
    assert any("--url" in warning and "credentials" in warning for warning in config.warnings)


@pytest.mark.parametrize("url", ["http://ops:hunter2secret@127.0.0.1:99999/hub/api",
                                 "ftp://ops:hunter2secret@127.0.0.1/hub/api",
                                 "http://ops:hunter2secret@127.0.0.1/hub/api?x=1"])
def test_a_bad_url_with_credentials_is_refused_without_repeating_them(url):
    with pytest.raises(ConfigError) as info:
        load(["--url=" + url])
    assert "hunter2secret" not in str(info.value) and "--url" in str(info.value)


# --- files that are not UTF-8 text (docs/behaviour.md#config-files) ---

NOT_UTF8 = {
    "latin-1": ("\u00e9t\u00e9", lambda text: text.encode("latin-1")),
    "UTF-16": ("", lambda text: text.encode("utf-16")),
    "UTF-32": ("", lambda text: text.encode("utf-32")),
}
# A token file may not start with a UTF-8 byte-order mark (it would be part of the token); a
# config file may (see test_config_file_starting_with_a_byte_order_mark_loads).
TOKEN_NOT_UTF8 = dict(NOT_UTF8, **{
    "UTF-8 with a byte-order mark": ("", lambda text: codecs.BOM_UTF8 + text.encode("utf-8"))})


def load_files(argv, env=ENV):
    return load_config(parse_command_line(argv), env, read_text)


@pytest.mark.parametrize("encoding", sorted(NOT_UTF8))
@pytest.mark.parametrize("name,text", [
    ("c.ini", "[culler]\ntimeout = 600  ; %s\n"),
    ("c.py", "c.IdleCuller.timeout = 600  # %s\n"),
])
def test_config_file_that_is_not_utf8_is_a_config_error_naming_it(tmp_path, encoding, name,
                                                                   text):
    extra, encode = NOT_UTF8[encoding]
    path = tmp_path / name
    path.write_bytes(encode(text % extra))
    with pytest.raises(ConfigError) as info:
        load_files(["--config=%s" % path])
    message = str(info.value)
    assert str(path) in message and ("UTF-8" in message or "byte-order mark" in message)


@pytest.mark.parametrize("encoding", sorted(TOKEN_NOT_UTF8))
def test_token_file_that_is_not_utf8_is_a_config_error_naming_it(tmp_path, encoding):
    _, encode = TOKEN_NOT_UTF8[encoding]
    path = tmp_path / "token"
    path.write_bytes(encode("\u00e9abcd1234secret\n" if encoding == "latin-1"
                            else "abcd1234secret\n"))
    with pytest.raises(ConfigError) as info:
        load_files(["--api-token-file=%s" % path], env={})
    message = str(info.value)
    assert str(path) in message and ("UTF-8" in message or "byte-order mark" in message)
    assert "abcd1234" not in message


def test_python_config_file_with_a_nul_byte_is_a_config_error():
    with pytest.raises(ConfigError, match="c.py"):
        load(["--config=c.py"], files={"c.py": "c.IdleCuller.timeout = 600\x00\n"})


# --- numbers out of range (docs/behaviour.md#values-and-validation) ---

NOT_NUMBERS = {boolean, text, patterns, server_patterns, option_patterns, entries}


def ranged(converter):
    return getattr(converter, "maximum", None) is not None


def past(converter):
    """A value just past the converter's maximum, as text."""
    top = converter.maximum
    return str(top + 1) if isinstance(top, int) else repr(top * 1.5)


def test_every_number_option_and_rule_key_has_a_range():
    for option in OPTIONS:
        if option.convert not in NOT_NUMBERS and not option.choices:
            assert ranged(option.convert), option.name
    for key, converter in RULE_KEYS.items():
        if converter not in NOT_NUMBERS:
            assert ranged(converter), key


@pytest.mark.parametrize("option", [option for option in OPTIONS if ranged(option.convert)],
                         ids=lambda option: option.name)
def test_every_number_option_takes_its_maximum_and_refuses_more_naming_the_range(option):
    top = option.convert.maximum
    load(["%s=%s" % (option.flag, top)])
    for source, argv, env in [("command line", ["%s=%s" % (option.flag, past(option.convert))],
                               ENV),
                              ("environment", [], dict(ENV, **{option.env_name:
                                                              past(option.convert)}))]:
        with pytest.raises(ConfigError) as info:
            load(argv, env)
        message = str(info.value)
        assert option.flag in message and source in message and "%d" % top in message


@pytest.mark.parametrize("key", [key for key, converter in RULE_KEYS.items()
                                 if ranged(converter)])
def test_every_number_rule_key_refuses_more_than_its_maximum_naming_the_range(key):
    converter = RULE_KEYS[key]
    parse_rule_option("r:users=a,%s=%s" % (key, converter.maximum), "--rule")
    with pytest.raises(ConfigError) as info:
        parse_rule_option("r:users=a,%s=%s" % (key, past(converter)), "--rule")
    assert key in str(info.value) and "%d" % converter.maximum in str(info.value)


@pytest.mark.parametrize("argument", ["--timeout=100000000000000",
                                      "--cull-every=100000000000000", "--max-age=10000000000000",
                                      "--request-timeout=1e10", "--concurrency=1000000000"])
def test_out_of_range_numbers_are_config_errors_naming_option_and_range(argument):
    flag = argument.split("=")[0]
    with pytest.raises(ConfigError, match=r"%s .*out of range.* to [0-9]+" % flag):
        load([argument])


def test_the_largest_accepted_values_are_usable_at_run_time():
    # The limits are what the clock, the sleep and the worst-case arithmetic can take.
    most = OPTIONS_BY_NAME["timeout"].convert.maximum
    settings = CullSettings(timeout=most, max_age=most, cull_users=True)
    old = NOW - timedelta(seconds=most)
    owner = User("ann", created=old, last_activity=old,
                 servers=(Server("", True, started=old, last_activity=old),))
    assert judge_server(owner, owner.servers[0], NOW, settings).action is Action.STOP
    assert NOW + timedelta(seconds=most) < datetime.max.replace(tzinfo=timezone.utc)
    for name in ("timeout", "cull_every", "max_age", "request_timeout"):
        assert OPTIONS_BY_NAME[name].convert.maximum <= threading.TIMEOUT_MAX / 10
    for key in ("timeout", "max_age", "user_timeout", "user_max_age"):
        assert RULE_KEYS[key].maximum == most


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/hub/api", "http://127.0.0.1:0/hub/api",
                                 "http://127.0.0.1:http/hub/api", "http://127.0.0.1:-1/",
                                 "http://:8081/hub/api", "http:///hub/api", "https://"])
def test_url_with_a_bad_port_or_no_host_is_a_config_error(url):
    with pytest.raises(ConfigError, match="--url"):
        load(["--url=" + url])


@pytest.mark.parametrize("url", ["http://[::1/hub/api", "http://ho st/hub/api",
                                 "http://a\x00b/hub/api", "http://a<b>/hub/api"])
def test_url_whose_host_cannot_be_a_host_is_a_config_error(url):
    with pytest.raises(ConfigError, match="--url"):
        load(["--url=" + url])


def test_config_ca_bundle_from_the_environment_verifies_the_hub_and_the_servers():
    # The transport sends with Session.send, which does not read REQUESTS_CA_BUNDLE itself.
    config = load([], dict(ENV, REQUESTS_CA_BUNDLE="/etc/ca.pem"))
    assert config.hub.ca_bundle == "/etc/ca.pem" and config.hub.env_ca_bundle == "/etc/ca.pem"
    assert load([], dict(ENV, CURL_CA_BUNDLE="/etc/curl.pem")).hub.ca_bundle == "/etc/curl.pem"
    plain = load([])
    assert plain.hub.ca_bundle is None and plain.hub.env_ca_bundle is None
