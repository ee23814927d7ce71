"""The command line and the config-file keys, made from the declarations in ``settings``.

Every spelling of an option (``--cull-users``, ``--cull_users``, ``--IdleCuller.cull_users``,
the alias ``--logging``), "did you mean", ``--help`` in its groups and ``--generate-config``
come from ``settings.OPTIONS``; the declarations and the converters are re-exported here for
the modules that read options by name (``sources``, the tests, the man page).
"""

import argparse
import difflib
import sys
from typing import Any, Dict, Iterable, List, Optional, Sequence

from idle_culler_daemon import __version__
from idle_culler_daemon.converters import DURATION_SYNTAX
from idle_culler_daemon.errors import EXIT_CODES
from idle_culler_daemon.settings import (  # noqa: F401 - re-exported
    DEFAULT_CONFIG_FILE,
    DEFAULT_URL,
    ENV_PREFIX,
    GROUPS,
    MAN_PAGE,
    OPTIONS,
    OPTIONS_BY_NAME,
    PROG,
    RULE_KEYS,
    RULE_KEYS_DECLARED,
    RULE_MATCHERS,
    RULE_SETTINGS,
    UNLIMITED_CONCURRENCY,
    Option,
    show,
)

# Spellings of earlier generations that name an option differently (1.x ``--logging``).
ALIASES = {"logging": "log_level"}

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
        epilog="Durations (DURATION): %s; a bare number is seconds. Exit codes: %s. The "
               "manual page %s (man %s) describes the config file, the environment, systemd, "
               "reload, logs and metrics."
               % (DURATION_SYNTAX, "; ".join("%d %s" % (code, short) for code, (short, _)
                                             in EXIT_CODES.items()), MAN_PAGE, PROG))
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
    return "\n".join(lines + _rule_keys()) + "\n" + _RULE_EXAMPLES


def _rule_keys() -> List[str]:
    """The explanation of ``[rule:NAME]`` sections, a line per key."""
    lines = ["; Rules refine the settings above for some users or servers: the first rule",
             "; whose matchers all match decides. Matchers (comma-separated fnmatch patterns):"]
    lines += [";   %s: %s" % (key.name, key.text) for key in RULE_KEYS_DECLARED if key.matcher]
    lines.append("; Settings (as in [culler]):")
    lines += [";   %s: %s" % (key.name, key.text) for key in RULE_KEYS_DECLARED
              if not key.matcher]
    return lines
