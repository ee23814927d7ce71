#!/usr/bin/env python3
"""Write the man page jupyterhub-idle-culler(1) from the option definitions.

The OPTIONS section is made from the same argparse parser that prints ``--help``
(``idle_culler_daemon.options.build_parser``), and the ENVIRONMENT section from the same
``OPTIONS`` table, so the page cannot drift from the program. Standard library only: the
package is imported from the source tree next to this script, nothing needs installing.

    python3 packaging/make-manpage.py                  # roff on stdout
    python3 packaging/make-manpage.py -o build/jupyterhub-idle-culler.1

Reproducible: the date comes from $SOURCE_DATE_EPOCH (set by dpkg-buildpackage and rpmbuild);
without it the page is dated by the version only, never by the current time.
"""

import argparse
import os
import sys
import time

SOURCE_TREE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, SOURCE_TREE)

from idle_culler_daemon import __version__  # noqa: E402
from idle_culler_daemon.options import (  # noqa: E402
    DEFAULT_URL,
    ENV_PREFIX,
    OPTIONS,
    PROG,
    build_parser,
)

CONF_DIR = "/etc/jupyterhub-idle-culler"

EXIT_CODES = (
    ("0", "Done: the daemon was stopped, or the single pass of \\fB\\-\\-once\\fR succeeded. "
          "Also for \\fB\\-\\-help\\fR, \\fB\\-\\-version\\fR and "
          "\\fB\\-\\-generate\\-config\\fR."),
    ("1", "An unexpected error: a bug. The log has the traceback."),
    ("2", "Usage error: an unknown option or a missing option value."),
    ("75", "With \\fB\\-\\-once\\fR: the hub could not be reached, some stops or deletions "
           "failed, or the mass\\-cull guard (\\fB\\-\\-max\\-stop\\-fraction\\fR) stopped "
           "the pass (EX_TEMPFAIL; try again later)."),
    ("78", "Configuration error: a bad option value, an unreadable file, no API token, a "
           "token that lacks a needed scope, or a \\fB\\-\\-url\\fR that answers but is not "
           "the JupyterHub API (EX_CONFIG). Nothing was changed on the hub. A reload never "
           "exits: a bad configuration is refused and the running one stays."),
)

# Variables read besides the JUPYTERHUB_IDLE_CULLER_* ones made from OPTIONS.
OTHER_ENV = (
    ("JUPYTERHUB_API_URL", "The hub API URL when \\fB\\-\\-url\\fR is not given "
                           "(default " + DEFAULT_URL + "). JupyterHub sets it for the services "
                           "it starts."),
    ("JUPYTERHUB_API_TOKEN", "The API token, when neither \\fB\\-\\-api\\-token\\-file\\fR nor "
                             "a credential gives one. Prefer a file or a credential: the "
                             "environment of a process is visible to the same user."),
    ("JUPYTERHUB_REQUEST_TIMEOUT", "Read timeout in seconds when \\fB\\-\\-request\\-timeout\\fR "
                                   "is not given (default 60)."),
    ("JUPYTERHUB_PUBLIC_HUB_URL", "The hub's public URL, set by JupyterHub for the services it "
                                  "starts when it has \\fBpublic_url\\fR: its origin is the "
                                  "default of \\fB\\-\\-server\\-url\\-base\\fR."),
    ("JUPYTERHUB_HOST", "The hub's public origin (or subdomain host), set the same way: the "
                        "default of \\fB\\-\\-server\\-url\\-base\\fR when "
                        "\\fBJUPYTERHUB_PUBLIC_HUB_URL\\fR is not set."),
    ("CREDENTIALS_DIRECTORY", "Set by systemd for \\fBLoadCredential=\\fR; the token is read "
                              "from \\fI$CREDENTIALS_DIRECTORY/api\\-token\\fR when "
                              "\\fB\\-\\-api\\-token\\-file\\fR is not given."),
    ("JUPYTERHUB_SSL_KEYFILE", "With \\fB\\-\\-ssl\\-enabled\\fR: the client key, instead of "
                               "the one under \\fB\\-\\-internal\\-certs\\-location\\fR."),
    ("JUPYTERHUB_SSL_CERTFILE", "With \\fB\\-\\-ssl\\-enabled\\fR: the client certificate, "
                                "instead of the one under "
                                "\\fB\\-\\-internal\\-certs\\-location\\fR."),
    ("JUPYTERHUB_SSL_CLIENT_CA", "With \\fB\\-\\-ssl\\-enabled\\fR: the CA bundle that "
                                 "verifies the hub, instead of the one under "
                                 "\\fB\\-\\-internal\\-certs\\-location\\fR."),
    ("NOTIFY_SOCKET", "Set by systemd for \\fBType=notify\\fR services: readiness, status "
                      "lines and stopping are reported there (\\fBsd_notify\\fR(3))."),
    ("WATCHDOG_USEC", "Set by systemd with \\fBWatchdogSec=\\fR: the culler pings the "
                      "watchdog while its passes make progress."),
)

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
    """Escape plain text for a roff body line: backslashes, hyphens and leading control dots."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
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
    return lines


def environment_section() -> list:
    lines = [".SH ENVIRONMENT",
             "Every option except \\fB\\-\\-generate\\-config\\fR, \\fB\\-\\-show\\-config\\fR and "
             "\\fB\\-\\-version\\fR "
             "has a variable \\fB%s\\fR\\fINAME\\fR, the option's name in capitals with "
             "underscores. Booleans take the same words as on the command line; repeatable "
             "options take a comma\\-separated list." % ENV_PREFIX]
    for option in OPTIONS:
        if option.env_name:
            lines += [".TP", "\\fB%s\\fR" % option.env_name,
                      "Same as \\fB%s\\fR." % option.flag.replace("-", "\\-")]
    for name, text in OTHER_ENV:
        lines += [".TP", "\\fB%s\\fR" % name, text]
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
        "needs the scopes list:users, read:users:activity, read:servers and delete:servers; "
        "admin:users or delete:users with \\fB\\-\\-cull\\-users\\fR; read:users:groups for "
        "rules on groups; access:servers with \\fB\\-\\-check\\-kernels\\fR.",
    ]
    lines += options_section(parser)
    lines += environment_section()
    lines.append(".SH FILES")
    for path, text in FILES:
        lines += [".TP", "\\fI%s\\fR" % path, text]
    lines.append(".SH EXIT STATUS")
    for code, text in EXIT_CODES:
        lines += [".TP", "\\fB%s\\fR" % code, text]
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
