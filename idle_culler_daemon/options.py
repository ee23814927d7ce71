"""The option table, every spelling of it, and the converters from text to values.

One table, ``OPTIONS``, defines every option once: the command line (``--help``), the
environment variables, the config-file keys, ``--generate-config`` and the man page are all
made from it. Each option names its converter, a function from a raw value (text, or a literal
from a ``.py`` file) to a value that raises ``ValueError`` with a short reason; the rule keys
of ``[rule:NAME]`` sections use the same converters (``RULE_KEYS``).

To add an option: one ``Option(...)`` row here, a field where ``config.load_config`` builds the
settings, and a line in docs/behaviour.md (docs/architecture.md, "Where things go").
"""

import argparse
import difflib
import math
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from idle_culler_daemon import __version__

PROG = "jupyterhub-idle-culler"
ENV_PREFIX = "JUPYTERHUB_IDLE_CULLER_"
DEFAULT_URL = "http://127.0.0.1:8081/hub/api"
UNLIMITED_CONCURRENCY = 64
# The ranges of the numbers: what a person could mean, and what the clock (timedelta, datetime),
# the sleep (threading's TIMEOUT_MAX) and the connection pool (a slot per worker) can take.
MAX_SECONDS = 10 * 365 * 86400  # ten years
MAX_CONCURRENCY = 1000
MAX_PAGE_SIZE = 10000
MAX_PORT = 65535
MAX_REQUEST_TIMEOUT = 86400.0  # a day
MAX_STOPS_PER_PASS = 1000000
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}
_LEVEL_NUMBERS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}
#: Read when no config file is named (command line or environment) and it exists.
DEFAULT_CONFIG_FILE = "/etc/jupyterhub-idle-culler/culler.conf"
MAN_PAGE = "jupyterhub-idle-culler(1)"

#: The sections of ``--help`` (and of the man page's OPTIONS), in order: key -> title.
GROUPS: Dict[str, str] = {
    "hub": "hub connection",
    "cull": "what to cull",
    "rules": "rules",
    "run": "run mode",
    "output": "output",
    "metrics": "metrics",
    "notify": "notifications",
}

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})

Converter = Callable[[Any], Any]


# --- converters: raw value -> value, or ValueError with the reason -------------------------

def boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ValueError("is not a boolean (true/false, yes/no, 1/0, on/off)")


def count(raw: Any) -> int:
    """A whole number >= 0 (seconds, sizes, ports)."""
    if isinstance(raw, bool):
        raise ValueError("is not an integer")
    try:
        value = raw if isinstance(raw, int) else int(str(raw).strip())
    except ValueError:
        raise ValueError("is not an integer") from None
    if value < 0:
        raise ValueError("must not be negative")
    return value


def whole_number(maximum: int, unit: str = "") -> Converter:
    """A converter to a whole number from 0 to ``maximum`` (its ``maximum`` attribute)."""
    def convert(raw: Any) -> int:
        value = count(raw)
        if value > maximum:
            raise ValueError("is out of range: give a whole number from 0 to %d%s"
                             % (maximum, unit))
        return value
    convert.maximum = maximum  # type: ignore[attr-defined]  # for the tests of the ranges
    return convert


def _positive(raw: Any) -> float:
    """A finite number above 0."""
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise ValueError("is not a number") from None
    if not value > 0 or math.isinf(value):
        raise ValueError("must be a positive number")
    return value


def _at_most(maximum: float, unit: str) -> str:
    return "is out of range: give a number above 0, up to %g%s" % (maximum, unit)


def fraction(raw: Any) -> float:
    """A share of something: a number above 0 and at most 1 (``0.5``)."""
    value = _positive(raw)
    if value > 1:
        raise ValueError("must be a fraction above 0 and at most 1")
    return value


fraction.maximum = 1.0  # type: ignore[attr-defined]  # for the tests of the ranges


# --- durations: every value in seconds also takes 90s, 30m, 1h30m, 7d, 2w --------------------

DURATION_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
DURATION_SYNTAX = ("a number of seconds, or a duration such as 90s, 30m, 1h, 1h30m, 7d, 2w "
                   "(units w, d, h, m, s, largest first, each at most once)")
_DURATION = re.compile("".join(r"(?:(?P<%s>\d+)%s)?" % (unit, unit)
                               for unit, _ in DURATION_UNITS))


def _duration_seconds(raw: Any) -> Optional[int]:
    """Whole seconds of a duration with units (``1h30m``), or None if it has none."""
    text = str(raw).strip().lower()
    match = _DURATION.fullmatch(text) if text else None
    if match is None or not any(match.groups()):
        return None
    return sum(int(match.group(unit)) * size for unit, size in DURATION_UNITS
               if match.group(unit))


def duration(maximum: int, unit: str = "") -> Converter:
    """A converter to whole seconds from 0 to ``maximum``: a bare integer is seconds, or a
    duration with units (``30m``)."""
    whole = whole_number(maximum, unit)

    def convert(raw: Any) -> int:
        if isinstance(raw, bool):
            raise ValueError("is not a duration")
        if isinstance(raw, int) or str(raw).strip().lstrip("-").isdigit():
            return whole(raw)
        value = _duration_seconds(raw)
        if value is None:
            raise ValueError("is not " + DURATION_SYNTAX)
        return whole(value)
    convert.maximum = maximum  # type: ignore[attr-defined]
    return convert


def positive_duration(maximum: float, unit: str = "") -> Converter:
    """A converter to seconds above 0 and at most ``maximum``: fractions allowed for a bare
    number (``0.5``), or a duration (``2m``)."""
    def convert(raw: Any) -> float:
        value = None if isinstance(raw, bool) else _duration_seconds(raw)
        if value is None:
            try:
                value = _positive(raw)
            except ValueError:
                raise ValueError("is not " + DURATION_SYNTAX) from None
        if value <= 0:
            raise ValueError("must be a positive duration")
        if value > maximum:
            raise ValueError(_at_most(maximum, unit))
        return float(value)
    convert.maximum = maximum  # type: ignore[attr-defined]
    return convert


seconds = duration(MAX_SECONDS, " seconds (ten years)")
request_seconds = positive_duration(MAX_REQUEST_TIMEOUT, " seconds (a day)")
workers = whole_number(MAX_CONCURRENCY)
page_size = whole_number(MAX_PAGE_SIZE)
port = whole_number(MAX_PORT)
stops = whole_number(MAX_STOPS_PER_PASS)


def text(raw: Any) -> str:
    return str(raw)


def patterns(raw: Any) -> Tuple[str, ...]:
    """Comma-separated items (a list in a ``.py`` file, or one per repeated option)."""
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    return tuple(part.strip() for item in items for part in str(item).split(",")
                 if part.strip())


def option_patterns(raw: Any) -> Tuple[Tuple[str, str], ...]:
    """``KEY=PATTERN`` pairs, comma-separated (``image=*pytorch*, size=large``)."""
    pairs = []
    for item in patterns(raw):
        key, equals, pattern = item.partition("=")
        if not equals or not key.strip():
            raise ValueError("has %r, which is not KEY=PATTERN" % item)
        pairs.append((key.strip(), pattern.strip()))
    return tuple(pairs)


# How a rule names the default server, whose name is empty: an empty quoted item.
DEFAULT_SERVER_SPELLINGS = frozenset({'""', "''"})


def server_patterns(raw: Any) -> Tuple[str, ...]:
    """Like :func:`patterns`; an item ``""`` (or ``''``) is the default server's empty name."""
    return tuple("" if item in DEFAULT_SERVER_SPELLINGS else item for item in patterns(raw))


def entries(raw: Any) -> Tuple[str, ...]:
    """Whole items that may contain commas themselves (``--rule NAME:k=v,k=v``)."""
    items = raw if isinstance(raw, (list, tuple)) else [raw]
    return tuple(str(item) for item in items)


def log_level(raw: Any) -> str:
    """A log level in any spelling the reference's generations took: ``debug``, ``WARN``,
    ``CRITICAL``/``FATAL``, or the numbers of Python's logging (``30``)."""
    if isinstance(raw, bool):
        raise ValueError("is not a log level")
    text = str(raw).strip().upper()
    if text.isdigit() and int(text) in _LEVEL_NUMBERS:
        return _LEVEL_NUMBERS[int(text)]
    text = _LEVEL_ALIASES.get(text, text)
    if text not in LOG_LEVELS:
        raise ValueError("is not one of " + ", ".join(LOG_LEVELS))
    return text


log_level.choices = LOG_LEVELS  # type: ignore[attr-defined]  # for --help and the man page


def one_of(*choices: str) -> Converter:
    """A converter accepting ``choices`` in any case; the result is spelt as in ``choices``."""
    def convert(raw: Any) -> str:
        for choice in choices:
            if str(raw).strip().lower() == choice.lower():
                return choice
        raise ValueError("is not one of " + ", ".join(choices))
    convert.choices = choices  # type: ignore[attr-defined]  # for --help and the man page
    return convert


# --- the table -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Option:
    """One option: its canonical name (underscores), converter, default and help text.

    ``group`` names its section of ``--help`` (a key of ``GROUPS``; every option needs one).
    ``cli_only`` options (actions such as ``--version``) have no environment variable and no
    config-file key; ``in_file`` False keeps an option out of config files; ``repeatable``
    options collect every occurrence on the command line and every source.
    """

    name: str
    convert: Converter
    default: Any
    help: str
    metavar: str = ""
    group: str = ""
    cli_only: bool = False
    in_file: bool = True
    repeatable: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env_name(self) -> Optional[str]:
        return None if self.cli_only else ENV_PREFIX + self.name.upper()

    @property
    def choices(self) -> Tuple[str, ...]:
        return getattr(self.convert, "choices", ())

    @property
    def is_flag(self) -> bool:
        return self.convert is boolean


OPTIONS: Tuple[Option, ...] = (
    Option("url", text, None, "JupyterHub API URL. Default: $JUPYTERHUB_API_URL, else "
           + DEFAULT_URL + ".", "URL", group="hub"),
    Option("timeout", seconds, 600, "Inactivity after which a server is stopped (and, with "
           "--cull-users, a user deleted), in seconds or as a duration (1h30m).", "DURATION",
           group="cull"),
    Option("cull_every", seconds, 0, "Time from the start of one pass to the start of the "
           "next. 0 means half of --timeout.", "DURATION", group="run"),
    Option("max_age", seconds, 0, "Stop servers older than this even if they are active. 0 "
           "disables the rule.", "DURATION", group="cull"),
    Option("cull_users", boolean, False, "Also delete idle users once none of their servers "
           "is running.", group="cull"),
    Option("cull_admin_users", boolean, True, "Allow admin users to be deleted, and their "
           "servers to be stopped by --max-age.", group="cull"),
    Option("remove_named_servers", boolean, False, "Remove named servers after stopping them, "
           "instead of only stopping them.", group="cull"),
    Option("cull_default_servers", boolean, True, "Manage default servers at all.", group="cull"),
    Option("cull_named_servers", boolean, True, "Manage named servers at all.", group="cull"),
    Option("check_kernels", boolean, False, "Before stopping a server the hub reports idle, "
           "ask the server itself (api/status, api/kernels through the proxy) and keep it "
           "while a kernel is busy or its own activity is within the timeout. Needs the "
           "access:servers scope and the proxy's URL (--server-url-base).", group="cull"),
    Option("server_url_base", text, None, "The proxy's public URL (scheme://host[:port]) "
           "through which --check-kernels asks the servers. Default: the origin of "
           "$JUPYTERHUB_PUBLIC_HUB_URL, else $JUPYTERHUB_HOST.", "URL", group="hub"),
    Option("max_stops_per_pass", stops, 0, "Stop at most this many servers in one pass, the "
           "longest idle first; the rest wait for the next pass. 0 means no limit.", "N",
           group="cull"),
    Option("max_stop_fraction", fraction, None, "If a pass would stop more than this share "
           "(0 < F <= 1) of the running servers it saw, it stops and deletes nothing and logs "
           "an ERROR: a guard against broken activity reporting. Unset: no guard.", "F",
           group="cull"),
    Option("concurrency", workers, 10, "Most HTTP requests in flight to the hub at once, across "
           "users. 0 means %d." % UNLIMITED_CONCURRENCY, "N", group="hub"),
    Option("api_page_size", page_size, 0, "Users per page when listing them (limit=). 0, the "
           "default, asks for as many as the hub gives (its api_page_max_limit, 200 unless "
           "raised): each page costs the hub about 20 ms of CPU.", "N", group="hub"),
    Option("ssl_enabled", boolean, False, "Present the hub's internal-SSL client certificate.",
           group="hub"),
    Option("internal_certs_location", text, "internal-ssl", "Folder with the hub's internal "
           "certificates (hub-internal/, hub-ca/). $JUPYTERHUB_SSL_KEYFILE, "
           "$JUPYTERHUB_SSL_CERTFILE and $JUPYTERHUB_SSL_CLIENT_CA win when set.", "DIR",
           group="hub"),
    Option("request_timeout", request_seconds, None, "How long to wait for the hub on each "
           "request (read timeout). Default: $JUPYTERHUB_REQUEST_TIMEOUT, else 60 (seconds).",
           "DURATION", group="hub"),
    Option("api_token_file", text, None, "Read the API token from this file. Otherwise "
           "$CREDENTIALS_DIRECTORY/api-token (systemd LoadCredential=), then "
           "$JUPYTERHUB_API_TOKEN.", "PATH", group="hub"),
    Option("once", boolean, False, "Run one pass and exit (for cron and the timer unit).",
           group="run"),
    Option("dry_run", boolean, False, "Decide and log as usual but send no DELETE (the token "
           "then needs read scopes only). With --once, print the plan on stdout (see "
           "--output).", group="run"),
    Option("output", one_of("table", "json"), "table", "What --once --dry-run prints: a table, "
           "or json (one object per planned action, then a summary object).", "FORMAT",
           group="output"),
    Option("exclude_users", patterns, (), "Never stop the servers of, or delete, users matching "
           "these fnmatch patterns (comma-separated; repeatable).", "PATTERNS", repeatable=True,
           group="rules"),
    Option("exclude_groups", patterns, (), "Never stop the servers of, or delete, members of "
           "these groups (comma-separated; repeatable; needs read:users:groups).", "GROUPS",
           repeatable=True, group="rules"),
    Option("rule", entries, (), "A rule as NAME:key=value,key=value (the keys of a [rule:NAME] "
           "config section; a list value continues over following commas without '='). "
           "Repeatable; rules given here come before those of the config file.", "RULE",
           repeatable=True, in_file=False, group="rules"),
    # notifications (webhook): the three rows of docs/behaviour.md#webhook-notifications
    Option("notify_url", text, None, "POST every notification (warnings before a stop or "
           "deletion, the stops, deletions and mass-cull guard trips) as one JSON object to "
           "this http(s) URL, e.g. a Slack or Mattermost incoming webhook. A secret: redacted "
           "in the log and --show-config. Unset: no webhook.", "URL", group="notify"),
    Option("notify_header_file", text, None, "Read one 'Name: value' header line (usually "
           "'Authorization: Bearer ...') for the --notify-url requests from this file, e.g. a "
           "systemd credential. A secret, like the URL.", "PATH", group="notify"),
    Option("warn_before", seconds, 0, "Warn this long before a server is stopped (or, with "
           "--cull-users, a user deleted): once per idle stretch, in the log and to "
           "--notify-url. 0 means no warnings.", "DURATION", group="notify"),
    Option("metrics_port", port, 0, "Serve /healthz, and Prometheus metrics at /metrics "
           "(needs the [metrics] extra), on this port. 0 disables the endpoint.", "PORT",
           group="metrics"),
    Option("metrics_address", text, "127.0.0.1", "Address the metrics endpoint binds to.",
           "ADDRESS", group="metrics"),
    Option("metrics_file", text, None, "Write Prometheus metrics to this file after every pass "
           "(node_exporter textfile collector; needs the [metrics] extra).", "PATH",
           group="metrics"),
    Option("log_level", log_level, "INFO", "Least severe log level shown (also WARN, FATAL, "
           "and the numbers 10-50).", "LEVEL", group="output"),
    Option("log_format", one_of("text", "json"), "text", "text (logfmt: key=value) or json "
           "(one object per line).", "FORMAT", group="output"),
    Option("config", text, None, "Config file: *.py is read as the reference's traitlets file "
           "(literal assignments only, never executed); anything else as INI. Default: "
           "./idle_culler_config.py, else " + DEFAULT_CONFIG_FILE + ", the first that exists; "
           "an empty value reads no file.", "PATH",
           in_file=False, group="run"),
    Option("show_config", boolean, False, "Print the effective configuration, with the source "
           "of each value (the token redacted), and exit.", cli_only=True, group="output"),
    Option("generate_config", boolean, False, "Print a commented INI config file and exit.",
           cli_only=True, group="output"),
    Option("version", boolean, False, "Print the version and exit.", cli_only=True,
           group="output"),
)
OPTIONS_BY_NAME: Dict[str, Option] = {option.name: option for option in OPTIONS}

# Spellings of earlier generations that name an option differently (1.x ``--logging``).
ALIASES = {"logging": "log_level"}

# The keys of a ``[rule:NAME]`` section: matchers (all must match) and the settings they
# override, each with its converter.
RULE_MATCHERS = ("users", "groups", "server_names", "profiles", "user_options")
RULE_SETTINGS = ("cull", "timeout", "max_age", "user_timeout", "user_max_age", "check_kernels")
RULE_KEYS: Dict[str, Converter] = {
    "users": patterns, "groups": patterns, "server_names": server_patterns, "profiles": patterns,
    "user_options": option_patterns,
    "cull": boolean, "timeout": seconds, "max_age": seconds, "user_timeout": seconds,
    "user_max_age": seconds, "check_kernels": boolean,
}


def file_option(key: str) -> Optional[Option]:
    """The option a config-file key names (``-`` or ``_``, aliases), or None."""
    name = key.replace("-", "_")
    option = OPTIONS_BY_NAME.get(ALIASES.get(name, name))
    if option is None or option.cli_only or not option.in_file:
        return None
    return option


def env_names() -> List[str]:
    """Return every ``JUPYTERHUB_IDLE_CULLER_*`` variable the culler reads."""
    return [option.env_name for option in OPTIONS if option.env_name]


def show(value: Any) -> str:
    """A value as the text a user would write for it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(value)
    return str(value)


# --- the command line ------------------------------------------------------------------------

def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean X?)"`` for the choice closest to a misspelt ``word``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return " (did you mean %s?)" % close[0] if close else ""


def _option_key(argument: str) -> str:
    """``--IdleCuller.cull-users=1`` -> ``cull_users`` (the table's spelling, alias resolved)."""
    name = argument[2:].partition("=")[0]
    if name.startswith("IdleCuller."):
        name = name[len("IdleCuller."):]
    key = name.replace("-", "_")
    return ALIASES.get(key, key)


def suggest_option(argument: str) -> str:
    """The hint for an unknown ``--argument``: the closest option's flag, or ``""``."""
    close = difflib.get_close_matches(_option_key(argument), list(OPTIONS_BY_NAME), n=1,
                                      cutoff=0.6)
    return " (did you mean %s?)" % OPTIONS_BY_NAME[close[0]].flag if close else ""


def _normalise_argument(argument: str) -> str:
    """Map every accepted spelling of an option onto ``--dashed-name[=value]``.

    Accepted: ``--cull-users``, ``--cull_users`` (1.x), ``--IdleCuller.cull_users`` (2.0
    traitlets) and the alias ``--logging``.
    """
    if not argument.startswith("--") or argument == "--":
        return argument
    key = _option_key(argument)
    if key not in OPTIONS_BY_NAME:
        return argument  # argparse names it in its usage error
    equals, value = argument.partition("=")[1:]
    return "--" + key.replace("_", "-") + equals + value


_UNRECOGNISED = "unrecognized arguments: "


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 on usage errors: keep that
        if message.startswith(_UNRECOGNISED):  # name the closest option of each unknown one
            unknown = message[len(_UNRECOGNISED):].split(" ")
            message = "unknown option: " + ", ".join(
                word + (suggest_option(word) if word.startswith("--") else "")
                for word in unknown)
        self.print_usage(sys.stderr)
        self.exit(2, "%s: error: %s\nSee %s --help, or man %s.\n"
                  % (self.prog, message, self.prog, PROG))


def _add_option(group: Any, option: Option) -> None:
    """Add one option of the table to its ``--help`` group; every value stays raw."""
    default = "" if option.default in (None, (), "") else " (default: %s)" % show(
        option.default)
    if option.is_flag and not option.cli_only:
        group.add_argument(option.flag, dest=option.name, nargs="?", const="true",
                           metavar="BOOL", help=option.help + default)
    elif option.is_flag:
        group.add_argument(option.flag, dest=option.name, action="store_const",
                           const="true", help=option.help)
    elif option.repeatable:
        group.add_argument(option.flag, dest=option.name, action="append",
                           metavar=option.metavar, help=option.help)
    else:
        group.add_argument(option.flag, dest=option.name, metavar=option.metavar,
                           help=option.help + default)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """Return the argument parser, its options in the sections of ``GROUPS``.

    An option whose ``group`` is not a key of ``GROUPS`` is a programming error (KeyError);
    tests/unit/test_config.py checks every row.
    """
    parser = _Parser(
        prog=prog, allow_abbrev=False, argument_default=argparse.SUPPRESS,
        usage="%(prog)s [OPTION ...]",
        description="Stop idle Jupyter servers and delete idle users through the JupyterHub "
                    "REST API. Every option can also be set with an environment variable "
                    "%s<NAME> (e.g. %sTIMEOUT=3600) or in the config file; the command line "
                    "wins, then the environment, then the file, then the default."
                    % (ENV_PREFIX, ENV_PREFIX),
        epilog="Durations (DURATION): %s; a bare number is seconds. Exit codes: 0 done, 1 "
               "unexpected error, 2 usage, 75 hub unreachable, pass failures or the mass-cull "
               "guard (--once), 78 configuration error. The manual page %s (man %s) describes "
               "the config file, the environment, systemd, reload, logs and metrics."
               % (DURATION_SYNTAX, MAN_PAGE, PROG))
    groups = {key: parser.add_argument_group(title) for key, title in GROUPS.items()}
    for option in OPTIONS:
        _add_option(groups[option.group], option)
    return parser


def parse_command_line(argv: Sequence[str]) -> Dict[str, Any]:
    """Parse ``argv`` into raw option values (strings, or lists for repeatable options)."""
    namespace = build_parser().parse_args([_normalise_argument(argument) for argument in argv])
    return vars(namespace)


# --- --generate-config -----------------------------------------------------------------------

_RULE_EXAMPLES = """\
; Rules refine the settings above for some users or servers. The first rule whose
; matchers all match decides; matchers are comma-separated fnmatch patterns on
; users, groups (needs the read:users:groups scope), server_names ("" is the
; default server), profiles (the server's user_options["profile"]) and
; user_options (KEY=PATTERN pairs on the server's user_options). Settings: cull,
; timeout, max_age, user_timeout, user_max_age, check_kernels; a timeout of 0 is
; refused, a max_age of 0 switches it off.
; Examples, to copy below without the leading ';':
;
; Never stop or delete staff:
; [rule:staff]
; groups = staff, admins
; cull = false
;
; GPU servers get a shorter idle limit and a maximum age:
; [rule:gpu]
; server_names = gpu-*
; timeout = 15m
; max_age = 8h
;
; Default servers ("") get two hours, named servers keep the global limit:
; [rule:home]
; server_names = ""
; timeout = 2h
;
; Servers started with a GPU profile (KubeSpawner's profile_list), kept while a
; kernel is busy:
; [rule:gpu-profile]
; profiles = gpu-*
; timeout = 15m
; check_kernels = true
;
; Guests are deleted after a day without activity:
; [rule:guests]
; users = guest-*
; user_timeout = 1d
"""


def generate_config() -> str:
    """A commented INI config: every option at its default, and example rules.

    Lines starting with ``#`` are settings at their defaults (uncomment any of them and the
    file still loads; an empty value means the default); lines starting with ``;`` explain.
    """
    lines = ["; Configuration of jupyterhub-idle-culler (idle_culler_daemon %s)." % __version__,
             "; Save it as %s (read when it exists) or pass it with" % DEFAULT_CONFIG_FILE,
             "; --config=PATH. Command-line options and JUPYTERHUB_IDLE_CULLER_* environment",
             "; variables win over this file. Lines starting with '#' are the settings at",
             "; their defaults: uncomment what you change. After a change: systemctl reload.",
             "; Durations: %s;" % DURATION_SYNTAX[:DURATION_SYNTAX.index(" (")],
             "; a bare number is seconds.",
             "", "[culler]"]
    for option in OPTIONS:
        if option.cli_only or not option.in_file:
            continue
        default = "" if option.default is None else show(option.default)
        lines += ["; " + option.help, "# %s = %s" % (option.name, default), ""]
    return "\n".join(lines) + "\n" + _RULE_EXAMPLES
