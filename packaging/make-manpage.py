#!/usr/bin/env python3
"""Write the man page jupyterhub-idle-culler(1) from the declarations in the package.

The OPTIONS section is made from the same argparse parser that prints ``--help``
(``idle_culler_daemon.options.build_parser``), the ENVIRONMENT section from the same
declarations (``settings.OPTIONS`` and ``reference.OTHER_ENVIRONMENT``), the scopes from
``scopes`` (as docs/reference.md), the exit codes from ``errors.EXIT_CODES``: the page cannot
drift from the program. Standard library only: the package is imported from the source tree
next to this script, nothing needs installing.

    python3 packaging/make-manpage.py                  # roff on stdout
    python3 packaging/make-manpage.py -o build/jupyterhub-idle-culler.1

Reproducible: the date comes from $SOURCE_DATE_EPOCH (set by dpkg-buildpackage and rpmbuild);
without it the page is dated by the version only, never by the current time.
"""

import argparse
import os
import re
import sys
import time

SOURCE_TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, SOURCE_TREE)

from idle_culler_daemon import __version__  # noqa: E402
from idle_culler_daemon.errors import EXIT_CODES  # noqa: E402
from idle_culler_daemon.options import (  # noqa: E402
    ENV_PREFIX,
    OPTIONS,
    PROG,
    build_parser,
)
from idle_culler_daemon.reference import OTHER_ENVIRONMENT, scope_rows  # noqa: E402
from idle_culler_daemon.settings import ACTIONS  # noqa: E402

CONF_DIR = "/etc/jupyterhub-idle-culler"

FILES = (
    (CONF_DIR + "/culler.env",
     "Options as \\fBJUPYTERHUB_IDLE_CULLER_*\\fR variables (and \\fBJUPYTERHUB_API_URL\\fR), "
     "read by the packaged systemd units through \\fBEnvironmentFile=\\fR. A configuration "
     "file of the package, kept on upgrades when changed."),
    (CONF_DIR + "/api-token",
     "The hub API token, written by the administrator (mode 0600, owned by root). The units "
     "pass it with \\fBLoadCredential=\\fR, so the culler reads it from "
     "\\fI$CREDENTIALS_DIRECTORY\\fR and it never appears in the environment."),
    (CONF_DIR + "/culler.conf",
     "An optional INI configuration file (\\fB[culler]\\fR and \\fB[rule:\\fR\\fINAME\\fR"
     "\\fB]\\fR sections), read when it exists and no \\fB\\-\\-config\\fR is given "
     "(after \\fIidle_culler_config.py\\fR in the working directory, if that exists); "
     "readable by the service's dynamic user (mode 0644; it holds no secret). "
     "\\fB\\-\\-generate\\-config\\fR prints a commented one; after a change, "
     "\\fBsystemctl reload jupyterhub\\-idle\\-culler\\fR applies it, or refuses it and "
     "keeps the running configuration. \\fB\\-\\-show\\-config\\fR prints what is in force "
     "and where each value comes from."),
    (CONF_DIR + "/\\fINAME\\fP.env",
     "Settings of the template instance \\fBjupyterhub\\-idle\\-culler@\\fR\\fINAME\\fR"
     "\\fB.service\\fR (required; it wins over culler.env); \\fBCULLER_ARGS=\\fR there "
     "adds command\\-line arguments."),
    (CONF_DIR + "/\\fINAME\\fP.token",
     "The API token of that instance (required), passed with \\fBLoadCredential=\\fR."),
    ("/usr/lib/systemd/system/jupyterhub\\-idle\\-culler.service",
     "The daemon. Not enabled on installation: write the token first."),
    ("/usr/lib/systemd/system/jupyterhub\\-idle\\-culler@.service",
     "A template for several cullers side by side (for example one stopping servers, one "
     "deleting users), each with its own settings, token and sandbox."),
    ("/usr/lib/systemd/system/jupyterhub\\-idle\\-culler\\-oneshot.service",
     "One pass (\\fB\\-\\-once\\fR), started by the timer below."),
    ("/usr/lib/systemd/system/jupyterhub\\-idle\\-culler\\-oneshot.timer",
     "Runs the oneshot service periodically. Enable either the daemon or the timer, not both."),
)

EXAMPLES = (
    ("Show what would be culled now, changing nothing:",
     PROG + " \\-\\-url=http://127.0.0.1:8081/hub/api \\-\\-timeout=3600 \\e\n"
     "    \\-\\-api\\-token\\-file=" + CONF_DIR + "/api\\-token \\-\\-once \\-\\-dry\\-run"),
    ("Run as a service under systemd, after writing the token:",
     "install \\-m 0600 /dev/null " + CONF_DIR + "/api\\-token\n"
     "$EDITOR " + CONF_DIR + "/api\\-token " + CONF_DIR + "/culler.env\n"
     "systemctl enable \\-\\-now jupyterhub\\-idle\\-culler.service"),
    ("Run as a JupyterHub managed service (jupyterhub_config.py), with the 2.0 spellings:",
     "c.JupyterHub.services = [{\n"
     "    \"name\": \"idle\\-culler\",\n"
     "    \"command\": [\"" + PROG + "\", \"\\-\\-timeout=3600\",\n"
     "                \"\\-\\-IdleCuller.cull_users=true\"],\n"
     "}]"),
    ("Keep staff servers running, and give GPU servers a shorter idle limit:",
     PROG + " \\-\\-rule 'staff:groups=staff,admins,cull=false' \\e\n"
     "    \\-\\-rule 'gpu:server_names=gpu\\-*,timeout=15m'"),
    ("Give servers of GPU profiles 15 minutes, unless a kernel is busy; never stop more than a "
     "tenth of the running servers in one pass:",
     PROG + " \\-\\-timeout=1h \\-\\-rule 'gpu:profiles=gpu\\-*,timeout=15m,"
     "check_kernels=true' \\e\n"
     "    \\-\\-server\\-url\\-base=https://hub.example.org \\-\\-max\\-stop\\-fraction=0.1"),
    ("The plan as JSON lines, for a script:",
     PROG + " \\-\\-once \\-\\-dry\\-run \\-\\-output=json \\-\\-timeout=1h"),
    ("Write a commented configuration file to start from:",
     PROG + " \\-\\-generate\\-config > " + CONF_DIR + "/culler.conf"),
)


def roff_text(text: str) -> str:
    """Escape plain text for a roff body line: backslashes, hyphens and leading control dots;
    option names (``--name``) in bold."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = re.sub(r"(?<![\w\\])((?:\\-){2}[a-z](?:[a-z]|\\-)*[a-z])", r"\\fB\1\\fR", text)
    if text.startswith((".", "'")):
        text = "\\&" + text
    return text


def page_date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return time.strftime("%Y-%m-%d", time.gmtime(int(epoch)))
    return "version " + __version__


def option_heading(action: argparse.Action) -> str:
    """The .TP tag of one option, e.g. ``\\fB\\-\\-timeout\\fR=\\fISECONDS\\fR``."""
    flags = ", ".join("\\fB%s\\fR" % flag.replace("-", "\\-") for flag in action.option_strings)
    metavar = action.metavar
    if action.nargs == 0:
        return flags
    if action.nargs == "?":
        return flags + "[=\\fI%s\\fR]" % (metavar or "VALUE")
    return flags + "=\\fI%s\\fR" % (metavar or action.dest.upper())


def options_section(parser: argparse.ArgumentParser) -> list:
    by_name = {option.name: option for option in OPTIONS}
    lines = [".SH OPTIONS",
             "Each option may also be written with underscores (\\fB\\-\\-cull_users\\fR, as "
             "in jupyterhub\\-idle\\-culler 1.x) or with the 2.0 class prefix "
             "(\\fB\\-\\-IdleCuller.cull_users\\fR). A boolean option given alone means true; "
             "its value may be true, false, yes, no, on, off, 1 or 0, in any case. "
             "A \\fIDURATION\\fR is a number of seconds, or numbers with units, largest "
             "first: \\fB90s\\fR, \\fB30m\\fR, \\fB1h\\fR, \\fB1h30m\\fR, \\fB7d\\fR, "
             "\\fB2w\\fR (w, d, h, m, s); the same holds in the environment, the "
             "configuration file and its rules. "
             "Precedence: command line, then environment, then configuration file, then "
             "default."]
    for group in parser._action_groups:  # the same groups and order as --help
        actions = [action for action in group._group_actions if action.option_strings]
        if not actions:
            continue
        lines.append(".SS %s" % roff_text(group.title[:1].upper() + group.title[1:]))
        lines += option_entries(actions, by_name)
    return lines


def option_entries(actions: list, by_name: dict) -> list:
    lines = []
    for action in actions:
        lines.append(".TP")
        lines.append(option_heading(action))
        lines.append(roff_text(action.help or ""))
        option = by_name.get(action.dest)
        if option is not None and option.choices:
            lines.append(".br")
            lines.append("One of: " + ", ".join("\\fB%s\\fR" % c for c in option.choices) + ".")
        if option is not None and option.env_name:
            lines.append(".br")
            lines.append("Environment: \\fB%s\\fR." % option.env_name.replace("-", "\\-"))
        if option is not None and option.path and not option.reload:
            lines += [".br", "A reload keeps the running value: a change needs a restart."]
    return lines


def environment_section() -> list:
    actions = [action.flag for action in ACTIONS]
    lines = [".SH ENVIRONMENT",
             roff_text("Every option except %s and %s" % (", ".join(actions[:-1]), actions[-1]))
             + " has a variable \\fB%s\\fR\\fINAME\\fR, the option's name in capitals with "
             "underscores. Booleans take the same words as on the command line; repeatable "
             "options take a comma\\-separated list." % ENV_PREFIX]
    for option in OPTIONS:
        if option.env_name:
            lines += [".TP", "\\fB%s\\fR" % option.env_name,
                      "Same as \\fB%s\\fR." % option.flag.replace("-", "\\-")]
    for name, text in OTHER_ENVIRONMENT:
        lines += [".TP", "\\fB%s\\fR" % name, roff_text(text)]
    return lines


def render() -> str:
    parser = build_parser(PROG)
    lines = [
        '.\\" Generated by packaging/make-manpage.py from idle_culler_daemon/options.py.',
        '.\\" Do not edit: change the option definitions and rebuild.',
        '.TH JUPYTERHUB\\-IDLE\\-CULLER 1 "%s" "jupyterhub\\-idle\\-culler\\-daemon %s" '
        '"User Commands"' % (page_date(), __version__),
        ".ad l",  # left-aligned: URLs and variable names make justified lines gappy
        ".nh",  # and no hyphenation inside option and variable names
        ".SH NAME",
        "jupyterhub\\-idle\\-culler \\- stop idle Jupyter servers and delete idle users of a "
        "JupyterHub",
        ".SH SYNOPSIS",
        ".B jupyterhub\\-idle\\-culler",
        ".RI [ OPTION ...]",
        ".SH DESCRIPTION",
        roff_text(parser.description or ""),
        ".PP",
        "Without \\fB\\-\\-once\\fR it runs as a daemon: a pass every \\fB\\-\\-cull\\-every\\fR "
        "seconds, until SIGTERM or SIGINT; SIGHUP reloads the configuration (a bad one is "
        "refused and the old one stays). Under systemd it reports readiness and status with "
        "\\fBsd_notify\\fR(3) and honours the watchdog. Log lines go to standard error.",
        ".PP",
        "The API token is looked for, first found wins, in the file of "
        "\\fB\\-\\-api\\-token\\-file\\fR, in \\fI$CREDENTIALS_DIRECTORY/api\\-token\\fR "
        "(systemd \\fBLoadCredential=\\fR) and in \\fB$JUPYTERHUB_API_TOKEN\\fR. The token "
        "needs these scopes (JupyterHub 2 and later; before 2.0 its owner must be an admin):",
    ]
    for feature, needed in scope_rows(mark=lambda scope: scope):
        lines += [".IP \\(bu 2", roff_text("%s: %s" % (feature, needed))]
    lines += options_section(parser)
    lines += environment_section()
    lines.append(".SH FILES")
    for path, text in FILES:
        lines += [".TP", "\\fI%s\\fR" % path, text]
    lines.append(".SH EXIT STATUS")
    for code, (_, text) in EXIT_CODES.items():
        lines += [".TP", "\\fB%d\\fR" % code, roff_text(text)]
    lines.append(".SH EXAMPLES")
    for text, command in EXAMPLES:
        lines += [".PP", text, ".PP", ".nf", ".RS 4"]
        lines += [("\\&" + line) if line.startswith((".", "'")) else line
                  for line in command.split("\n")]
        lines += [".RE", ".fi"]
    lines += [
        ".SH SEE ALSO",
        "\\fBsystemd.service\\fR(5), \\fBsystemd.exec\\fR(5), \\fBsystemd.timer\\fR(5), "
        "\\fBsd_notify\\fR(3), \\fBsystemd\\-creds\\fR(1)",
        ".PP",
        "The JupyterHub REST API documentation, and the README in "
        "/usr/share/doc/jupyterhub\\-idle\\-culler\\-daemon/ for the differences from "
        "jupyterhub\\-idle\\-culler.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", metavar="PATH",
                        help="write the page here instead of standard output")
    args = parser.parse_args(argv)
    page = render()
    if args.output:
        directory = os.path.dirname(args.output)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(page)
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
