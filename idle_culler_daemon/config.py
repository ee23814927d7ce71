"""Options, their sources and the frozen configuration built from them.

One table, ``OPTIONS``, defines every option once: the command line (``--help``), the
environment variables, the config file keys, ``--generate-config`` and the man page are all
made from it. ``load_config`` merges the sources with the precedence command line >
environment > config file > default and validates the result into frozen dataclasses.

This module reads no environment and does no network I/O: the caller passes the environment
mapping and a ``read_file`` callable.
"""

import argparse
import ast
import configparser
import fnmatch
import os.path
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from idle_culler_daemon import __version__
from idle_culler_daemon.errors import ConfigError

ENV_PREFIX = "JUPYTERHUB_IDLE_CULLER_"
DEFAULT_URL = "http://127.0.0.1:8081/hub/api"
TOKEN_CREDENTIAL = "api-token"
UNLIMITED_CONCURRENCY = 64
CONNECT_TIMEOUT_S = 3.05  # just above a multiple of 3 s, the TCP SYN retransmission step
RETRIES = 3
BACKOFF_FACTOR_S = 0.5
RETRY_AFTER_CAP_S = 30.0

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class Option:
    """One option: its canonical name (underscores), kind, default and help text.

    ``cli_only`` options (actions such as ``--version``) have no environment variable and no
    config-file key. ``repeatable`` options collect every occurrence on the command line.
    """

    name: str
    kind: str  # bool, int, float, str, choice, list
    default: Any
    help: str
    metavar: str = ""
    choices: Tuple[str, ...] = ()
    cli_only: bool = False
    in_file: bool = True
    repeatable: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env_name(self) -> Optional[str]:
        return None if self.cli_only else ENV_PREFIX + self.name.upper()


OPTIONS: Tuple[Option, ...] = (
    Option("url", "str", None, "JupyterHub API URL. Default: $JUPYTERHUB_API_URL, else "
           + DEFAULT_URL + ".", "URL"),
    Option("timeout", "int", 600, "Seconds of inactivity after which a server is stopped "
           "(and, with --cull-users, a user deleted).", "SECONDS"),
    Option("cull_every", "int", 0, "Seconds from the start of one pass to the start of the "
           "next. 0 means half of --timeout.", "SECONDS"),
    Option("max_age", "int", 0, "Stop servers older than this many seconds even if they are "
           "active. 0 disables the rule.", "SECONDS"),
    Option("cull_users", "bool", False, "Also delete idle users once none of their servers is "
           "running."),
    Option("cull_admin_users", "bool", True, "Allow admin users to be deleted, and their servers "
           "to be stopped by --max-age."),
    Option("remove_named_servers", "bool", False, "Remove named servers after stopping them, "
           "instead of only stopping them."),
    Option("cull_default_servers", "bool", True, "Manage default servers at all."),
    Option("cull_named_servers", "bool", True, "Manage named servers at all."),
    Option("concurrency", "int", 10, "Most HTTP requests in flight to the hub at once, across "
           "users. 0 means %d." % UNLIMITED_CONCURRENCY, "N"),
    Option("api_page_size", "int", 0, "Users per page when listing them (limit=). 0 lets the "
           "hub choose (50, at most 200).", "N"),
    Option("ssl_enabled", "bool", False, "Present the hub's internal-SSL client certificate."),
    Option("internal_certs_location", "str", "internal-ssl", "Folder with the hub's internal "
           "certificates (hub-internal/, hub-ca/). $JUPYTERHUB_SSL_KEYFILE, "
           "$JUPYTERHUB_SSL_CERTFILE and $JUPYTERHUB_SSL_CLIENT_CA win when set.", "DIR"),
    Option("request_timeout", "float", None, "Seconds to wait for the hub on each request "
           "(read timeout). Default: $JUPYTERHUB_REQUEST_TIMEOUT, else 60.", "SECONDS"),
    Option("api_token_file", "str", None, "Read the API token from this file. Otherwise "
           "$CREDENTIALS_DIRECTORY/api-token (systemd LoadCredential=), then "
           "$JUPYTERHUB_API_TOKEN.", "PATH"),
    Option("once", "bool", False, "Run one pass and exit (for cron and the timer unit)."),
    Option("dry_run", "bool", False, "Decide and log as usual but send no DELETE. With --once, "
           "print a summary table on stdout."),
    Option("exclude_users", "list", (), "Never stop the servers of, or delete, users matching "
           "these fnmatch patterns (comma-separated; repeatable).", "PATTERNS", repeatable=True),
    Option("exclude_groups", "list", (), "Never stop the servers of, or delete, members of these "
           "groups (comma-separated; repeatable; needs read:users:groups).", "GROUPS",
           repeatable=True),
    Option("rule", "list", (), "A rule as NAME:key=value,key=value (the keys of a [rule:NAME] "
           "config section; a list value continues over following commas without '='). "
           "Repeatable; rules given here come before those of the config file.", "RULE",
           repeatable=True, in_file=False),
    Option("metrics_port", "int", 0, "Serve Prometheus metrics on this port (needs the "
           "[metrics] extra). 0 disables it.", "PORT"),
    Option("metrics_address", "str", "127.0.0.1", "Address the metrics endpoint binds to.",
           "ADDRESS"),
    Option("metrics_file", "str", None, "Write Prometheus metrics to this file after every pass "
           "(node_exporter textfile collector).", "PATH"),
    Option("log_level", "choice", "INFO", "Least severe log level shown.", "LEVEL",
           choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    Option("log_format", "choice", "text", "text (key=value) or json (one object per line).",
           "FORMAT", choices=("text", "json")),
    Option("config", "str", None, "Config file: *.py is read as the reference's traitlets file "
           "(literal assignments only, never executed); anything else as INI.", "PATH",
           in_file=False),
    Option("generate_config", "bool", False, "Print a commented INI config file and exit.",
           cli_only=True),
    Option("version", "bool", False, "Print the version and exit.", cli_only=True),
)
OPTIONS_BY_NAME: Dict[str, Option] = {option.name: option for option in OPTIONS}

# Spellings of earlier generations that name an option differently (1.x ``--logging``).
ALIASES = {"logging": "log_level"}

RULE_MATCHERS = ("users", "groups", "server_names")
RULE_SETTINGS = ("cull", "timeout", "max_age", "user_timeout", "user_max_age")


def env_names() -> List[str]:
    """Return every ``JUPYTERHUB_IDLE_CULLER_*`` variable the culler reads."""
    return [option.env_name for option in OPTIONS if option.env_name]


@dataclass(frozen=True)
class RuleSettings:
    """One rule section: matchers (all must match) and the settings it overrides."""

    name: str
    users: Tuple[str, ...] = ()
    groups: Tuple[str, ...] = ()
    server_names: Tuple[str, ...] = ()
    cull: Optional[bool] = None
    timeout: Optional[int] = None
    max_age: Optional[int] = None
    user_timeout: Optional[int] = None
    user_max_age: Optional[int] = None


@dataclass(frozen=True)
class CullSettings:
    """What to cull: the global rules of SPEC section 4 plus the rule sections of section 6."""

    timeout: int = 600
    max_age: int = 0
    cull_users: bool = False
    cull_admin_users: bool = True
    remove_named_servers: bool = False
    cull_default_servers: bool = True
    cull_named_servers: bool = True
    rules: Tuple[RuleSettings, ...] = ()

    @property
    def needs_groups(self) -> bool:
        return any(rule.groups for rule in self.rules)


@dataclass(frozen=True)
class HubSettings:
    """How to reach the hub. The token is kept out of ``repr``."""

    api_url: str
    token: str = field(repr=False)
    read_timeout: float = 60.0
    connect_timeout: float = CONNECT_TIMEOUT_S
    retries: int = RETRIES
    backoff_factor: float = BACKOFF_FACTOR_S
    page_size: int = 0
    pool_size: int = 10
    client_cert: Optional[Tuple[str, str]] = None  # (certfile, keyfile)
    ca_bundle: Optional[str] = None

    def worst_case_call_s(self) -> float:
        """Upper bound of one HTTP call, retries, backoff and Retry-After waits included."""
        waits = sum(max(self.backoff_factor * 2 ** attempt, RETRY_AFTER_CAP_S)
                    for attempt in range(self.retries))
        # plus one read timeout for the body of a listing, which has a deadline of its own
        return (self.retries + 1) * (self.connect_timeout + self.read_timeout) + waits \
            + self.read_timeout


@dataclass(frozen=True)
class Config:
    """The whole validated configuration, built once per (re)load."""

    hub: HubSettings
    culling: CullSettings
    cull_every: int
    concurrency: int
    once: bool = False
    dry_run: bool = False
    log_level: str = "INFO"
    log_format: str = "text"
    config_file: Optional[str] = None
    metrics_port: int = 0
    metrics_address: str = "127.0.0.1"
    metrics_file: Optional[str] = None
    warnings: Tuple[str, ...] = ()
    values: Tuple[Tuple[str, str], ...] = ()  # every effective option as text, token excluded

    def describe(self) -> Dict[str, str]:
        """Return the effective options as text, for logging what a reload changed."""
        return dict(self.values)


# --- the command line -------------------------------------------------------------------------

def _normalise_argument(argument: str) -> str:
    """Map every accepted spelling of an option onto ``--dashed-name[=value]``.

    Accepted: ``--cull-users``, ``--cull_users`` (1.x), ``--IdleCuller.cull_users`` (2.0
    traitlets) and the alias ``--logging``.
    """
    if not argument.startswith("--") or argument == "--":
        return argument
    name, equals, value = argument[2:].partition("=")
    if name.startswith("IdleCuller."):
        name = name[len("IdleCuller."):]
    key = name.replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in OPTIONS_BY_NAME:
        return argument  # argparse names it in its usage error
    return "--" + key.replace("_", "-") + equals + value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 on usage errors: keep that
        self.print_usage()
        self.exit(2, "%s: error: %s\n" % (self.prog, message))


def build_parser(prog: str = "jupyterhub-idle-culler") -> argparse.ArgumentParser:
    """Return the argument parser; every value stays a string until ``load_config``."""
    parser = _Parser(
        prog=prog, allow_abbrev=False, argument_default=argparse.SUPPRESS,
        description="Stop idle Jupyter servers and delete idle users through the JupyterHub "
                    "REST API. Every option can also be set with an environment variable "
                    "%s<NAME> (e.g. %sTIMEOUT=3600) or in the config file." % (ENV_PREFIX,
                                                                                ENV_PREFIX),
        epilog="Exit codes: 0 done, 1 unexpected error, 2 usage, 75 hub unreachable or pass "
               "failures (--once), 78 configuration error.")
    for option in OPTIONS:
        default = "" if option.default in (None, (), "") else " (default: %s)" % _show(
            option.default)
        if option.kind == "bool" and not option.cli_only:
            parser.add_argument(option.flag, dest=option.name, nargs="?", const="true",
                                metavar="BOOL", help=option.help + default)
        elif option.kind == "bool":
            parser.add_argument(option.flag, dest=option.name, action="store_const",
                                const="true", help=option.help)
        elif option.repeatable:
            parser.add_argument(option.flag, dest=option.name, action="append",
                                metavar=option.metavar, help=option.help)
        else:
            parser.add_argument(option.flag, dest=option.name, metavar=option.metavar,
                                help=option.help + default)
    return parser


def parse_command_line(argv: Sequence[str]) -> Dict[str, Any]:
    """Parse ``argv`` into raw option values (strings, or lists for repeatable options)."""
    parser = build_parser()
    namespace = parser.parse_args([_normalise_argument(argument) for argument in argv])
    return vars(namespace)


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(value)
    return str(value)


# --- value conversion ------------------------------------------------------------------------

def _convert(option: Option, raw: Any, source: str) -> Any:
    """Convert one raw value (text, or a literal from a .py file) to the option's type."""
    where = "%s (from %s)" % (option.flag, source)
    if option.kind == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
        raise ConfigError("%s: %r is not a boolean (true/false, yes/no, 1/0, on/off)"
                          % (where, raw))
    if option.kind == "int":
        if isinstance(raw, bool):
            raise ConfigError("%s: %r is not an integer" % (where, raw))
        try:
            value = int(str(raw).strip()) if not isinstance(raw, int) else raw
        except ValueError:
            raise ConfigError("%s: %r is not an integer" % (where, raw)) from None
        if value < 0:
            raise ConfigError("%s: %r must not be negative" % (where, raw))
        return value
    if option.kind == "float":
        try:
            value = float(str(raw).strip())
        except ValueError:
            raise ConfigError("%s: %r is not a number" % (where, raw)) from None
        if not value > 0 or value != value or value == float("inf"):
            raise ConfigError("%s: %r must be a positive number" % (where, raw))
        return value
    if option.kind == "choice":
        text = str(raw).strip()
        for choice in option.choices:
            if text.lower() == choice.lower():
                return choice
        raise ConfigError("%s: %r is not one of %s" % (where, raw, ", ".join(option.choices)))
    if option.kind == "list":
        items = raw if isinstance(raw, (list, tuple)) else [raw]
        if option.name == "rule":
            return tuple(str(item) for item in items)
        return tuple(part.strip() for item in items for part in str(item).split(",")
                     if part.strip())
    return str(raw)


# --- config files ----------------------------------------------------------------------------

def _parse_python_config(text: str, path: str) -> Dict[str, Any]:
    """Read ``c.IdleCuller.<name> = <literal>`` lines of a traitlets file without running it."""
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise ConfigError("config file %s: line %s: %s" % (path, exc.lineno, exc.msg)) from None
    values: Dict[str, Any] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring
        if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.value, ast.Call)
                and isinstance(statement.value.func, ast.Name)
                and statement.value.func.id == "get_config"):
            continue  # ``c = get_config()``
        target = statement.targets[0] if isinstance(statement, ast.Assign) else None
        if (target is None or len(statement.targets) != 1 or not isinstance(target, ast.Attribute)
                or not isinstance(target.value, ast.Attribute)
                or target.value.attr != "IdleCuller"
                or not isinstance(target.value.value, ast.Name) or target.value.value.id != "c"):
            raise ConfigError("config file %s: line %d: only 'c.IdleCuller.<name> = <literal>' "
                              "assignments are read from .py files" % (path, statement.lineno))
        name = ALIASES.get(target.attr, target.attr)
        option = OPTIONS_BY_NAME.get(name)
        if option is None or not option.in_file or option.cli_only:
            raise ConfigError("config file %s: line %d: unknown option %r"
                              % (path, statement.lineno, target.attr))
        try:
            values[name] = ast.literal_eval(statement.value)
        except ValueError:
            raise ConfigError("config file %s: line %d: the value of %s must be a literal"
                              % (path, statement.lineno, target.attr)) from None
    return values


def _parse_ini_config(text: str, path: str) -> Tuple[Dict[str, Any], List[RuleSettings]]:
    """Read the ``[culler]`` section and the ``[rule:NAME]`` sections of an INI file."""
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None,
                                       default_section="__no_default_section__")
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        raise ConfigError("config file %s: %s" % (path, " ".join(str(exc).split()))) from None
    values: Dict[str, Any] = {}
    rules: List[RuleSettings] = []
    for section in parser.sections():
        if section == "culler":
            for key, raw in parser.items(section):
                name = ALIASES.get(key.replace("-", "_"), key.replace("-", "_"))
                option = OPTIONS_BY_NAME.get(name)
                if option is None or not option.in_file or option.cli_only:
                    raise ConfigError("config file %s: [culler]: unknown key %r" % (path, key))
                values[name] = raw
        elif section.startswith("rule:") and section[5:].strip():
            rules.append(parse_rule(section[5:].strip(), dict(parser.items(section)),
                                    "config file %s: [%s]" % (path, section)))
        else:
            raise ConfigError("config file %s: unknown section [%s] (expected [culler] or "
                              "[rule:NAME])" % (path, section))
    return values, rules


def parse_rule(name: str, items: Mapping[str, str], where: str) -> RuleSettings:
    """Validate one rule's keys and values into ``RuleSettings``.

    Raises ConfigError naming ``where`` and the key for unknown keys, bad patterns and bad
    values, and for a rule with no matcher at all.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError("%s: rule name %r may use only letters, digits, '_', '.' and '-'"
                          % (where, name))
    fields: Dict[str, Any] = {"name": name}
    for key, raw in items.items():
        key = key.strip().replace("-", "_")
        if key in RULE_MATCHERS:
            patterns = tuple(part.strip() for part in str(raw).split(",") if part.strip())
            if not patterns:
                raise ConfigError("%s: key %r: no pattern given" % (where, key))
            for pattern in patterns:
                _check_pattern(pattern, "%s: key %r" % (where, key))
            fields[key] = patterns
        elif key == "cull":
            fields[key] = _convert(Option("cull", "bool", None, ""), raw, where)
        elif key in RULE_SETTINGS:
            fields[key] = _convert(Option(key, "int", None, ""), raw, where)
        else:
            raise ConfigError("%s: unknown key %r (matchers: %s; settings: %s)"
                              % (where, key, ", ".join(RULE_MATCHERS), ", ".join(RULE_SETTINGS)))
    if not any(key in fields for key in RULE_MATCHERS):
        raise ConfigError("%s: a rule needs at least one of %s" % (where, ", ".join(RULE_MATCHERS)))
    return RuleSettings(**fields)


def _check_pattern(pattern: str, where: str) -> None:
    """Refuse fnmatch patterns that cannot mean what their author wanted."""
    if pattern.count("[") != pattern.count("]"):
        raise ConfigError("%s: bad pattern %r (unbalanced brackets)" % (where, pattern))
    try:
        re.compile(fnmatch.translate(pattern))
    except re.error as exc:
        raise ConfigError("%s: bad pattern %r (%s)" % (where, pattern, exc)) from None


def parse_rule_option(text: str, where: str) -> RuleSettings:
    """Parse ``NAME:key=value,key=value`` from ``--rule``.

    A comma-separated segment without ``=`` continues the previous value, so
    ``staff:groups=staff,admins,cull=false`` gives ``groups = staff, admins``.
    """
    name, colon, body = text.partition(":")
    if not colon or not name.strip():
        raise ConfigError("%s: %r is not NAME:key=value,..." % (where, text))
    items: Dict[str, str] = {}
    last_key = None
    for segment in body.split(","):
        key, equals, value = segment.partition("=")
        if equals:
            last_key = key.strip()
            if last_key in items:
                raise ConfigError("%s: key %r given twice in %r" % (where, last_key, text))
            items[last_key] = value.strip()
        elif last_key is not None and segment.strip():
            items[last_key] += "," + segment.strip()
        elif segment.strip():
            raise ConfigError("%s: %r has no '=' in %r" % (where, segment, text))
    return parse_rule(name.strip(), items, "%s %r" % (where, name.strip()))


def read_config_file(path: str, read_file: Callable[[str], str]
                     ) -> Tuple[Dict[str, Any], List[RuleSettings]]:
    """Read a config file into raw option values and rules."""
    try:
        text = read_file(path)
    except OSError as exc:
        raise ConfigError("--config: cannot read %s: %s" % (path, exc.strerror or exc)) from None
    if path.endswith(".py"):
        return _parse_python_config(text, path), []
    return _parse_ini_config(text, path)


def generate_config() -> str:
    """Return a commented INI config with every option at its default, and example rules."""
    lines = ["# Configuration of jupyterhub-idle-culler (idle_culler_daemon %s)." % __version__,
             "# Pass it with --config=PATH. Command-line options and JUPYTERHUB_IDLE_CULLER_*",
             "# environment variables win over this file. Uncomment what you change.",
             "", "[culler]"]
    for option in OPTIONS:
        if option.cli_only or not option.in_file:
            continue
        lines.append("; " + option.help)
        default = "" if option.default is None else _show(option.default)
        lines.append("# %s = %s" % (option.name, default))
        lines.append("")
    lines += [
        "# Rules refine the settings above for some users or servers. The first rule whose",
        "# matchers all match decides; matchers are comma-separated fnmatch patterns on",
        "# users, groups (needs the read:users:groups scope) and server_names (\"\" is the",
        "# default server). Settings: cull, timeout, max_age, user_timeout, user_max_age.",
        "",
        "# Never stop or delete staff:",
        "# [rule:staff]",
        "# groups = staff, admins",
        "# cull = false",
        "",
        "# GPU servers get a shorter idle limit and a maximum age:",
        "# [rule:gpu]",
        "# server_names = gpu-*",
        "# timeout = 900",
        "# max_age = 28800",
        "",
        "# Guests are deleted after a day without activity:",
        "# [rule:guests]",
        "# users = guest-*",
        "# user_timeout = 86400",
        ""]
    return "\n".join(lines)


# --- merging and validation ------------------------------------------------------------------

def _read_token(cli_file: Optional[str], env: Mapping[str, str],
                read_file: Callable[[str], str]) -> str:
    """Find the API token: --api-token-file, then $CREDENTIALS_DIRECTORY, then the env var."""
    candidates = []
    if cli_file:
        candidates.append(("--api-token-file", cli_file, True))
    if env.get("CREDENTIALS_DIRECTORY"):
        candidates.append(("$CREDENTIALS_DIRECTORY",
                           os.path.join(env["CREDENTIALS_DIRECTORY"], TOKEN_CREDENTIAL), False))
    for what, path, required in candidates:
        try:
            token = read_file(path).strip()
        except FileNotFoundError:
            if required:
                raise ConfigError("%s: cannot read %s: no such file" % (what, path)) from None
            continue
        except OSError as exc:
            raise ConfigError("%s: cannot read %s: %s" % (what, path, exc.strerror or exc)
                              ) from None
        if token:
            return token
        if required:
            raise ConfigError("%s: %s is empty" % (what, path))
    token = env.get("JUPYTERHUB_API_TOKEN", "").strip()
    if token:
        return token
    raise ConfigError("no API token: give --api-token-file=PATH, or a systemd credential "
                      "'api-token' ($CREDENTIALS_DIRECTORY/api-token), or $JUPYTERHUB_API_TOKEN")


def _check_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("--url: %r is not an http(s) URL with a host" % url)
    if parts.query or parts.fragment:
        raise ConfigError("--url: %r must not have a query or a fragment" % url)
    return url


def _ssl_files(values: Mapping[str, Any], env: Mapping[str, str]
               ) -> Tuple[Optional[Tuple[str, str]], Optional[str]]:
    if not values["ssl_enabled"]:
        return None, None
    folder = values["internal_certs_location"]
    keyfile = env.get("JUPYTERHUB_SSL_KEYFILE") or os.path.join(
        folder, "hub-internal", "hub-internal.key")
    certfile = env.get("JUPYTERHUB_SSL_CERTFILE") or os.path.join(
        folder, "hub-internal", "hub-internal.crt")
    ca_file = env.get("JUPYTERHUB_SSL_CLIENT_CA") or os.path.join(folder, "hub-ca", "hub-ca.crt")
    for path in (keyfile, certfile, ca_file):
        if not os.path.isfile(path):
            raise ConfigError("--ssl-enabled: certificate file %s does not exist (see "
                              "--internal-certs-location)" % path)
    return (certfile, keyfile), ca_file


def load_config(cli_values: Mapping[str, Any], env: Mapping[str, str],
                read_file: Callable[[str], str]) -> Config:
    """Merge command line, environment, config file and defaults into a validated Config.

    ``cli_values`` comes from ``parse_command_line``. Raises ConfigError (exit 78) naming the
    option and the value at the first problem.
    """
    layers: List[Tuple[str, Dict[str, Any]]] = [("command line", dict(cli_values))]
    env_values = {option.name: env[option.env_name] for option in OPTIONS
                  if option.env_name and option.env_name in env}
    layers.append(("environment", env_values))
    config_path = cli_values.get("config") or env_values.get("config")
    file_rules: List[RuleSettings] = []
    if config_path:
        file_values, file_rules = read_config_file(config_path, read_file)
        layers.append(("config file", file_values))
    fallbacks = {"url": env.get("JUPYTERHUB_API_URL") or DEFAULT_URL,
                 "request_timeout": env.get("JUPYTERHUB_REQUEST_TIMEOUT") or "60"}
    layers.append(("default", fallbacks))

    values: Dict[str, Any] = {}
    rules: List[RuleSettings] = []
    for option in OPTIONS:
        if option.cli_only:
            continue
        if option.repeatable:
            collected: List[Any] = []
            for source, layer in layers:
                if option.name in layer:
                    collected.extend(_convert(option, layer[option.name], source))
            values[option.name] = tuple(collected)
            continue
        for source, layer in layers:
            if option.name in layer:
                values[option.name] = _convert(option, layer[option.name], source)
                break
        else:
            values[option.name] = option.default

    for text in values["rule"]:
        rules.append(parse_rule_option(text, "--rule"))
    if values["exclude_groups"]:
        rules.insert(0, RuleSettings("exclude-groups", groups=values["exclude_groups"],
                                     cull=False))
    if values["exclude_users"]:
        rules.insert(0, RuleSettings("exclude-users", users=values["exclude_users"], cull=False))
    rules.extend(file_rules)
    names = [rule.name for rule in rules]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError("rule %r is defined more than once" % name)

    warnings: List[str] = []
    if values["timeout"] == 0:
        raise ConfigError("--timeout: 0 would stop every server at once; give seconds > 0")
    if values["cull_every"] == 0:
        values["cull_every"] = max(1, values["timeout"] // 2)
    if values["concurrency"] == 0:
        warnings.append("concurrency=0 (unlimited in jupyterhub-idle-culler) means %d here"
                        % UNLIMITED_CONCURRENCY)
        values["concurrency"] = UNLIMITED_CONCURRENCY
    if values["api_page_size"] > 200:
        warnings.append("api_page_size=%d is above the hub's maximum; it will answer 200 a page"
                        % values["api_page_size"])
    if values["metrics_port"] > 65535:
        raise ConfigError("--metrics-port: %r is not a TCP port" % values["metrics_port"])

    client_cert, ca_bundle = _ssl_files(values, env)
    hub = HubSettings(
        api_url=_check_url(values["url"]),
        token=_read_token(values["api_token_file"], env, read_file),
        read_timeout=values["request_timeout"],
        page_size=values["api_page_size"],
        pool_size=values["concurrency"],
        client_cert=client_cert,
        ca_bundle=ca_bundle,
    )
    culling = CullSettings(
        timeout=values["timeout"], max_age=values["max_age"], cull_users=values["cull_users"],
        cull_admin_users=values["cull_admin_users"],
        remove_named_servers=values["remove_named_servers"],
        cull_default_servers=values["cull_default_servers"],
        cull_named_servers=values["cull_named_servers"], rules=tuple(rules))
    shown = tuple((option.name, _show(values[option.name])) for option in OPTIONS
                  if not option.cli_only and values[option.name] is not None)
    return Config(
        hub=hub, culling=culling, cull_every=values["cull_every"],
        concurrency=values["concurrency"], once=values["once"], dry_run=values["dry_run"],
        log_level=values["log_level"], log_format=values["log_format"],
        config_file=config_path, metrics_port=values["metrics_port"],
        metrics_address=values["metrics_address"], metrics_file=values["metrics_file"],
        warnings=tuple(warnings), values=shown)
