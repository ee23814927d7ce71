"""The declarations: every option and every rule key, once, as a field of the frozen settings.

Each option is a field of one of the settings dataclasses (``Config``, ``HubSettings``,
``CullSettings``) declared with :func:`declare`: the field's name and default are the option's,
and its ``Option`` (converter, range, help, ``--help`` group, whether a reload applies it) is in
the field's metadata. Everything else is made from these fields: the command line and its
spellings, the ``JUPYTERHUB_IDLE_CULLER_*`` variables, the config-file keys, the settings
themselves (``config`` fills every declared field by a loop), ``--generate-config``,
``--show-config``, what a reload logs, the man page and docs/reference.md. The rule keys are the
fields of ``RuleSettings`` declared with :func:`rule_key`. Fields without a declaration are
derived by ``config`` (the token, the rules, the client certificate).

To add an option: one field here with ``declare(...)`` (docs/architecture.md, "Where things
go"); the code that uses it reads the field.
"""

from dataclasses import Field, dataclass, field, fields, is_dataclass, replace
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from idle_culler_daemon.converters import (
    Converter,
    boolean,
    entries,
    fraction,
    log_level,
    one_of,
    option_patterns,
    page_size,
    patterns,
    port,
    request_seconds,
    seconds,
    server_patterns,
    stops,
    text,
    workers,
)

PROG = "jupyterhub-idle-culler"
ENV_PREFIX = "JUPYTERHUB_IDLE_CULLER_"
DEFAULT_URL = "http://127.0.0.1:8081/hub/api"
UNLIMITED_CONCURRENCY = 64
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
_OPTION, _RULE_KEY = "option", "rule_key"  # the metadata keys of declared fields


@dataclass(frozen=True)
class Option:
    """One option: name (underscores), converter, default, help, and how it is given.

    ``group`` names its section of ``--help`` (a key of ``GROUPS``). ``cli_only`` options
    (actions such as ``--version``) have no variable, no config-file key and no field;
    ``in_file`` False keeps an option out of config files; ``repeatable`` options collect every
    occurrence; ``reload`` False: a running daemon keeps its value until restarted. ``path`` is
    the field it fills, from ``Config`` down (``("culling", "timeout")``).
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
    reload: bool = True
    secret: bool = False
    path: Tuple[str, ...] = ()

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
    def maximum(self) -> Any:
        return getattr(self.convert, "maximum", None)

    @property
    def is_flag(self) -> bool:
        return self.convert is boolean


def declare(convert: Converter, default: Any, help: str, metavar: str = "", **more: Any
            ) -> Any:
    """A settings field that is an option; ``more`` are further ``Option`` attributes
    (``group`` always; ``name`` when the option's name is not the field's)."""
    shown = not more.get("secret", False)  # a secret stays out of repr
    return field(default=default, repr=shown, metadata={_OPTION: Option(
        more.pop("name", ""), convert, default, help, metavar, **more)})


@dataclass(frozen=True)
class RuleKey:
    """One key of a rule: a matcher (all of a rule's must match) or a setting it overrides.

    ``zero`` names what a 0 would stop at once (then 0 is refused); ``relaxes`` says how a
    value culls less than the global setting of the same name: ``longer`` (an idle or age
    limit above it; an age limit of 0 is none), ``false`` or ``true``.
    """

    name: str
    convert: Converter
    help: str
    matcher: bool = False
    zero: str = ""
    relaxes: str = ""

    @property
    def maximum(self) -> Any:
        return getattr(self.convert, "maximum", None)

    @property
    def text(self) -> str:
        """What the key means, with what a 0 does when it is refused."""
        return self.help + ("" if not self.zero else " 0 is refused: it would stop every "
                            "matching %s at once." % self.zero)


def rule_key(convert: Converter, help: str, **more: Any) -> Any:
    """A ``RuleSettings`` field that is a rule key (matchers default to ``()``)."""
    key = RuleKey("", convert, help, **more)
    return field(default=() if key.matcher else None, metadata={_RULE_KEY: key})


@dataclass(frozen=True)
class RuleSettings:
    """One rule: matchers (all must match) and the settings it overrides."""

    name: str
    users: Tuple[str, ...] = rule_key(patterns, "User names.", matcher=True)
    groups: Tuple[str, ...] = rule_key(
        patterns, "The user's groups, one match is enough (needs read:users:groups).",
        matcher=True)
    server_names: Tuple[str, ...] = rule_key(
        server_patterns, 'Server names; "" is the default server.', matcher=True)
    profiles: Tuple[str, ...] = rule_key(
        patterns, "The server's user_options[\"profile\"] (servers only; the user chooses "
        "it).", matcher=True)
    user_options: Tuple[Tuple[str, str], ...] = rule_key(
        option_patterns, "KEY=PATTERN pairs on the server's user_options (servers only; the "
        "user chooses them).", matcher=True)
    cull: Optional[bool] = rule_key(boolean, "false: never stop the matched servers nor "
                                    "delete the matched users.", relaxes="false")
    timeout: Optional[int] = rule_key(seconds, "Idle limit of servers, and of users without "
                                      "user_timeout.", zero="server or user", relaxes="longer")
    max_age: Optional[int] = rule_key(seconds, "Age limit of servers; 0 switches it off.",
                                      relaxes="longer")
    user_timeout: Optional[int] = rule_key(seconds, "Idle limit for deleting users.",
                                           zero="user")
    user_max_age: Optional[int] = rule_key(seconds, "Age limit for deleting users; 0 "
                                           "switches it off.")
    check_kernels: Optional[bool] = rule_key(boolean, "Ask the matched servers themselves "
                                             "before stopping them (--check-kernels).",
                                             relaxes="true")

    @property
    def needs_user_options(self) -> bool:
        return bool(self.profiles or self.user_options)


@dataclass(frozen=True)
class HubSettings:
    """How to reach the hub. The token is kept out of ``repr``.

    How often and how long a call is retried is the hub client's own policy
    (``hub.RetryPolicy``), not a setting.
    """

    api_url: str = declare(text, DEFAULT_URL, "JupyterHub API URL, http:// or https:// (a "
                           "trailing / is ignored); when not given, $JUPYTERHUB_API_URL if "
                           "set.", "URL", group="hub", name="url")
    token: str = field(default="", repr=False)
    read_timeout: float = declare(
        request_seconds, 60.0, "How long to wait for the hub on each request (read "
        "timeout), in seconds or as a duration; when not given, $JUPYTERHUB_REQUEST_TIMEOUT "
        "if set.", "DURATION", group="hub", name="request_timeout")
    page_size: int = declare(
        page_size, 0, "Users per page when listing them (limit=). 0 asks for as many as "
        "the hub gives (its api_page_max_limit, 200 unless raised): each page costs the hub "
        "about 20 ms of CPU.", "N", group="hub", name="api_page_size")
    pool_size: int = 10  # --concurrency
    client_cert: Optional[Tuple[str, str]] = None  # (certfile, keyfile), from the next two
    ca_bundle: Optional[str] = None  # the hub's internal CA with --ssl-enabled, else env_ca_bundle
    # $REQUESTS_CA_BUNDLE or $CURL_CA_BUNDLE, as requests' Session.request would read them
    # (Session.send, which the transport uses, does not read the environment)
    env_ca_bundle: Optional[str] = None
    server_url_base: Optional[str] = declare(
        text, None, "The proxy's public URL (scheme://host[:port]) through which "
        "--check-kernels asks the servers. Default: the origin of $JUPYTERHUB_PUBLIC_HUB_URL, "
        "else $JUPYTERHUB_HOST.", "URL", group="hub")
    ssl_enabled: bool = declare(boolean, False, "Present the hub's internal-SSL client "
                                "certificate (JupyterHub's internal_ssl).", group="hub")
    internal_certs_location: str = declare(
        text, "internal-ssl", "Folder with the hub's internal certificates (hub-internal/, "
        "hub-ca/). $JUPYTERHUB_SSL_KEYFILE, $JUPYTERHUB_SSL_CERTFILE and "
        "$JUPYTERHUB_SSL_CLIENT_CA win when set.", "DIR", group="hub")
    api_token_file: Optional[str] = declare(
        text, None, "Read the API token from this file. Otherwise "
        "$CREDENTIALS_DIRECTORY/api-token (systemd LoadCredential=), then "
        "$JUPYTERHUB_API_TOKEN.", "PATH", group="hub")


@dataclass(frozen=True)
class CullSettings:
    """What to cull: the global settings and the rules that refine them."""

    timeout: int = declare(seconds, 600, "Inactivity after which a server is stopped (and, "
                           "with --cull-users, a user deleted), in seconds or as a duration "
                           "(1h30m).", "DURATION", group="cull")
    max_age: int = declare(seconds, 0, "Stop servers older than this even if they are "
                           "active. 0 disables the rule.", "DURATION", group="cull")
    cull_users: bool = declare(boolean, False, "Also delete idle users once none of their "
                               "servers is running.", group="cull")
    cull_admin_users: bool = declare(boolean, True, "Allow admin users to be deleted, and "
                                     "their servers to be stopped by --max-age.", group="cull")
    remove_named_servers: bool = declare(boolean, False, "Remove named servers after "
                                         "stopping them, instead of only stopping them.",
                                         group="cull")
    cull_default_servers: bool = declare(boolean, True, "Manage default servers at all.",
                                         group="cull")
    cull_named_servers: bool = declare(boolean, True, "Manage named servers at all.",
                                       group="cull")
    rules: Tuple[RuleSettings, ...] = ()  # the exclusions, --rule, then the file's sections
    check_kernels: bool = declare(
        boolean, False, "Before stopping a server the hub reports idle, ask the server itself "
        "(api/status, api/kernels through the proxy) and keep it while a kernel is busy or "
        "its own activity is within the timeout. Needs the proxy's URL (--server-url-base).",
        group="cull")
    max_stops_per_pass: int = declare(
        stops, 0, "Stop at most this many servers in one pass, the longest idle first; the "
        "rest wait for the next pass. 0 means no limit.", "N", group="cull")
    max_stop_fraction: Optional[float] = declare(
        fraction, None, "If a pass would stop more than this share (0 < F <= 1) of the "
        "running servers it saw, it stops and deletes nothing and logs an ERROR: a guard "
        "against broken activity reporting. Unset: no guard.", "F", group="cull")
    exclude_users: Tuple[str, ...] = declare(
        patterns, (), "Never stop the servers of, or delete, users matching these fnmatch "
        "patterns (comma-separated; repeatable).", "PATTERNS", repeatable=True, group="rules")
    exclude_groups: Tuple[str, ...] = declare(
        patterns, (), "Never stop the servers of, or delete, members of these groups "
        "(comma-separated; repeatable; needs read:users:groups).", "GROUPS", repeatable=True,
        group="rules")
    warn_before: int = declare(
        seconds, 0, "Warn this long before a server is stopped (or, with --cull-users, a user "
        "deleted): once per idle stretch, in the log and to --notify-url. 0 means no "
        "warnings.", "DURATION", group="notify")
    rule_texts: Tuple[str, ...] = declare(
        entries, (), "A rule as NAME:key=value,key=value (the keys of a [rule:NAME] config "
        "section; a list value continues over following commas without '='). Repeatable; "
        "rules given here come before those of the config file.", "RULE", repeatable=True,
        in_file=False, group="rules", name="rule")

    @property
    def needs_groups(self) -> bool:
        return any(rule.groups for rule in self.rules)

    @property
    def needs_user_options(self) -> bool:
        return any(rule.needs_user_options for rule in self.rules)

    @property
    def may_check_kernels(self) -> bool:
        """Whether any server may be asked about its kernels (globally or by a rule)."""
        return self.check_kernels or any(rule.check_kernels for rule in self.rules)


@dataclass(frozen=True)
class Config:
    """The whole validated configuration, built once per (re)load."""

    hub: HubSettings
    culling: CullSettings
    cull_every: int = declare(seconds, 0, "Time from the start of one pass to the start of "
                              "the next. 0 means half of --timeout.", "DURATION", group="run")
    concurrency: int = declare(workers, 10, "Most HTTP requests in flight to the hub at once, "
                               "across users. 0 means %d." % UNLIMITED_CONCURRENCY, "N",
                               group="hub")
    once: bool = declare(boolean, False, "Run one pass and exit (for cron and the timer unit).",
                         group="run", reload=False)
    dry_run: bool = declare(boolean, False, "Decide and log as usual but send no DELETE (the "
                            "token then needs read scopes only). With --once, print the plan "
                            "on stdout (see --output).", group="run")
    config_file: Optional[str] = declare(
        text, None, "Config file: *.py is read as the reference's traitlets file (literal "
        "assignments only, never executed); anything else as INI. Default: "
        "./idle_culler_config.py, else " + DEFAULT_CONFIG_FILE + ", the first that exists; "
        "an empty value reads no file.", "PATH", in_file=False, group="run", name="config")
    output: str = declare(one_of("table", "json"), "table", "What --once --dry-run prints: a "
                          "table, or json (one object per planned action, then a summary "
                          "object).", "FORMAT", group="output")
    log_level: str = declare(log_level, "INFO", "Least severe log level shown (also WARN, "
                             "FATAL, and the numbers 10-50).", "LEVEL", group="output")
    log_format: str = declare(one_of("text", "json"), "text", "text (logfmt: key=value) or "
                              "json (one object per line).", "FORMAT", group="output")
    metrics_port: int = declare(port, 0, "Serve /healthz, and Prometheus metrics at /metrics "
                                "(needs the [metrics] extra), on this port. 0 disables the "
                                "endpoint.", "PORT", group="metrics", reload=False)
    metrics_address: str = declare(text, "127.0.0.1", "Address the metrics endpoint binds "
                                   "to.", "ADDRESS", group="metrics", reload=False)
    metrics_file: Optional[str] = declare(
        text, None, "Write Prometheus metrics to this file after every pass (node_exporter "
        "textfile collector; needs the [metrics] extra).", "PATH", group="metrics")
    notify_url: Optional[str] = declare(
        text, None, "POST every notification (warnings before a stop or deletion, the stops, "
        "deletions and mass-cull guard trips) as one JSON object to this http(s) URL, e.g. a "
        "Slack or Mattermost incoming webhook. A secret: redacted in the log and "
        "--show-config. Unset: no webhook.", "URL", group="notify", secret=True)
    notify_header_file: Optional[str] = declare(
        text, None, "Read one 'Name: value' header line (usually 'Authorization: Bearer ...') "
        "for the --notify-url requests from this file, e.g. a systemd credential. A secret, "
        "like the URL.", "PATH", group="notify")
    # config.NotifySettings, derived from the notify_* options; None: no webhook
    notify: Optional[Any] = None
    warnings: Tuple[str, ...] = ()
    sources: Tuple[Tuple[str, str], ...] = ()  # where each option's value came from
    token_source: str = ""
    overridden: Tuple[str, ...] = ()  # set in the config file, but the command line or
    #                                   environment wins

    @property
    def secrets(self) -> Tuple[str, ...]:
        """Every secret of this configuration, for the log filter: the token, the webhook's."""
        return (self.hub.token,) + (self.notify.secrets if self.notify else ())

    def describe(self) -> Dict[str, str]:
        """The effective options as text (the token is no option; a secret URL as
        :func:`shown_url`), for ``--show-config`` and for logging what a reload changed."""
        return {option.name: (shown_url if option.secret else show)(value_of(self, option))
                for option in OPTIONS if option.path and value_of(self, option) is not None}


#: The actions: options of the command line only, which fill no setting.
ACTIONS: Tuple[Option, ...] = (
    Option("check_config", boolean, False, "Read every source and file as a start would, "
           "validate, and exit: 0 when the configuration is good, 78 when it is not. Asks "
           "the hub nothing, unless --preflight is given too.", group="run", cli_only=True),
    Option("preflight", boolean, False, "With --check-config: also ask the hub for its "
           "version and the token's scopes (78 when a needed scope is missing, 75 when the "
           "hub cannot be reached).", group="run", cli_only=True),
    Option("show_config", boolean, False, "Print the effective configuration, with the "
           "source of each value (the token redacted), and exit.", group="output",
           cli_only=True),
    Option("generate_config", boolean, False, "Print a commented INI config file and exit.",
           group="output", cli_only=True),
    Option("version", boolean, False, "Print the version and exit.", group="output",
           cli_only=True),
)


def option_of(item: Field) -> Optional[Option]:
    """The option a settings field declares (named), or None for a derived field."""
    option = item.metadata.get(_OPTION)
    return None if option is None else replace(option, name=option.name or item.name)


def _declared(cls: type, path: Tuple[str, ...] = ()) -> List[Option]:
    """The options declared in ``cls`` and the settings sections it holds, in field order."""
    found: List[Option] = []
    for item in fields(cls):
        option = option_of(item)
        if option is not None:
            found.append(replace(option, path=path + (item.name,)))
        elif isinstance(item.type, type) and is_dataclass(item.type):
            found += _declared(item.type, path + (item.name,))
    return found


#: Every option: the settings' fields, then the actions; ``--help`` shows them in this order
#: within each group.
OPTIONS: Tuple[Option, ...] = tuple(_declared(Config)) + ACTIONS
OPTIONS_BY_NAME: Dict[str, Option] = {option.name: option for option in OPTIONS}
#: Options a running daemon cannot change: a reload keeps their old values and says so.
RESTART_ONLY = tuple(option.name for option in OPTIONS if option.path and not option.reload)
RULE_KEYS_DECLARED: Tuple[RuleKey, ...] = tuple(
    replace(item.metadata[_RULE_KEY], name=item.name) for item in fields(RuleSettings)
    if _RULE_KEY in item.metadata)
RULE_KEYS: Dict[str, Converter] = {key.name: key.convert for key in RULE_KEYS_DECLARED}
RULE_MATCHERS = tuple(key.name for key in RULE_KEYS_DECLARED if key.matcher)
RULE_SETTINGS = tuple(key.name for key in RULE_KEYS_DECLARED if not key.matcher)


def value_of(config: Any, option: Option) -> Any:
    """The value of a declared option in ``config`` (following its ``path``)."""
    value = config
    for name in option.path:
        value = getattr(value, name)
    return value


def with_values(config: Any, changes: Dict[str, Any]) -> Any:
    """``config`` with some options (by name) set to other values, in whichever section."""
    def put(settings: Any, path: Tuple[str, ...], value: Any) -> Any:
        if len(path) == 1:
            return replace(settings, **{path[0]: value})
        return replace(settings, **{path[0]: put(getattr(settings, path[0]), path[1:], value)})
    for name, value in changes.items():
        config = put(config, OPTIONS_BY_NAME[name].path, value)
    return config


def restart_changes(old: Any, new: Any) -> Dict[str, Tuple[Any, Any]]:
    """The options a reload cannot apply that differ: name -> (running value, new value)."""
    return {name: (value_of(old, OPTIONS_BY_NAME[name]), value_of(new, OPTIONS_BY_NAME[name]))
            for name in RESTART_ONLY
            if value_of(old, OPTIONS_BY_NAME[name]) != value_of(new, OPTIONS_BY_NAME[name])}


def shown_url(url: str) -> str:
    """A secret URL as shown: ``https://hooks.example.org/<redacted>`` (scheme, host)."""
    parts = urlsplit(url)
    return "%s://%s/<redacted>" % (parts.scheme, parts.netloc.rpartition("@")[2])


def show(value: Any) -> str:
    """A value as the text a user would write for it (``KEY=PATTERN`` for pairs)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return "%d" % value
    if isinstance(value, (tuple, list)):
        return ",".join("=".join(item) if isinstance(item, tuple) else str(item)
                        for item in value)
    return str(value)
