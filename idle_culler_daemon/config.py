"""The frozen configuration, and how it is built: merge the sources, convert, validate.

``load_config`` takes the raw command-line values (``options.parse_command_line``), the
environment mapping and a ``read_file`` callable, merges the sources with the precedence
command line > environment > config file > default, converts each value with its option's
converter and validates the whole into frozen dataclasses. Every problem is a ``ConfigError``
naming the option (or the rule section and key) and the value: exit 78 before anything is sent
to the hub. No network I/O and no ``os.environ`` here.
"""

import fnmatch
import re
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

from idle_culler_daemon.errors import ConfigError
from idle_culler_daemon.options import (
    DEFAULT_URL,
    OPTIONS,
    OPTIONS_BY_NAME,
    RULE_KEYS,
    RULE_MATCHERS,
    RULE_SETTINGS,
    UNLIMITED_CONCURRENCY,
    Option,
    did_you_mean,
    file_option,
    show,
)
from idle_culler_daemon.sources import (
    DEFAULT_CONFIG_FILES,
    ReadFile,
    RuleSection,
    environment_values,
    find_token,
    read_config_file,
    ssl_files,
    unknown_variables,
)


@dataclass(frozen=True)
class RuleSettings:
    """One rule section: matchers (all must match) and the settings it overrides."""

    name: str
    users: Tuple[str, ...] = ()
    groups: Tuple[str, ...] = ()
    server_names: Tuple[str, ...] = ()
    profiles: Tuple[str, ...] = ()
    user_options: Tuple[Tuple[str, str], ...] = ()  # (key, pattern) pairs
    cull: Optional[bool] = None
    timeout: Optional[int] = None
    max_age: Optional[int] = None
    user_timeout: Optional[int] = None
    user_max_age: Optional[int] = None
    check_kernels: Optional[bool] = None

    @property
    def needs_user_options(self) -> bool:
        return bool(self.profiles or self.user_options)


@dataclass(frozen=True)
class CullSettings:
    """What to cull: the global settings and the rule sections that refine them."""

    timeout: int = 600
    max_age: int = 0
    cull_users: bool = False
    cull_admin_users: bool = True
    remove_named_servers: bool = False
    cull_default_servers: bool = True
    cull_named_servers: bool = True
    rules: Tuple[RuleSettings, ...] = ()
    check_kernels: bool = False
    max_stops_per_pass: int = 0            # 0: no limit
    max_stop_fraction: Optional[float] = None  # None: no guard
    warn_before: int = 0                   # --warn-before: 0, no warnings

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
class HubSettings:
    """How to reach the hub. The token is kept out of ``repr``.

    How often and how long a call is retried is the hub client's own policy
    (``hub.RetryPolicy``), not a setting.
    """

    api_url: str
    token: str = field(repr=False)
    read_timeout: float = 60.0
    page_size: int = 0
    pool_size: int = 10
    client_cert: Optional[Tuple[str, str]] = None  # (certfile, keyfile)
    ca_bundle: Optional[str] = None
    server_url_base: Optional[str] = None  # the proxy's origin, for --check-kernels


@dataclass(frozen=True)
class NotifySettings:
    """Where notifications go (``--notify-url``); the URL and the header are secrets.

    ``header``: the ``(name, value)`` of ``--notify-header-file``. ``hub``: the hub's public
    URL as the payloads name it. Timeouts are the hub's: connect 3.05 s, read
    ``read_timeout``.
    """

    url: str = field(repr=False)
    header: Optional[Tuple[str, str]] = field(default=None, repr=False)
    hub: str = ""
    read_timeout: float = 60.0

    @property
    def secrets(self) -> Tuple[str, ...]:
        """What the log filter must redact: the URL, its path and query on their own (an
        error message may name only those), and the header's value."""
        parts = urlsplit(self.url)
        found = [self.url, parts.path + ("?" + parts.query if parts.query else "")]
        if parts.query:
            found.append(parts.query)
        if self.header:
            found.append(self.header[1])
        return tuple(found)


@dataclass(frozen=True)
class Config:
    """The whole validated configuration, built once per (re)load."""

    hub: HubSettings
    culling: CullSettings
    cull_every: int
    concurrency: int
    once: bool = False
    dry_run: bool = False
    output: str = "table"
    log_level: str = "INFO"
    log_format: str = "text"
    config_file: Optional[str] = None
    metrics_port: int = 0
    metrics_address: str = "127.0.0.1"
    metrics_file: Optional[str] = None
    warnings: Tuple[str, ...] = ()
    values: Tuple[Tuple[str, str], ...] = ()  # every effective option as text, token excluded
    sources: Tuple[Tuple[str, str], ...] = ()  # where each option's value came from
    token_source: str = ""
    notify: Optional[NotifySettings] = None  # --notify-url; None: no webhook

    @property
    def secrets(self) -> Tuple[str, ...]:
        """Every secret of this configuration, for the log filter: the token, the webhook's."""
        return (self.hub.token,) + (self.notify.secrets if self.notify else ())

    def describe(self) -> Dict[str, str]:
        """Return the effective options as text, for logging what a reload changed."""
        return dict(self.values)


# --- converting ------------------------------------------------------------------------------

def convert(option: Option, raw: Any, source: str) -> Any:
    """Convert one raw value with the option's converter; errors name option and source."""
    try:
        return option.convert(raw)
    except ValueError as exc:
        raise ConfigError("%s (from %s): %r %s" % (option.flag, source, raw, exc)) from None


# --- rules -----------------------------------------------------------------------------------

# The idle limits of a rule, and what they would stop at 0 (refused, like --timeout=0).
IDLE_LIMITS = {"timeout": "server or user", "user_timeout": "user"}


def parse_rule(name: str, items: Mapping[str, Any], where: str) -> RuleSettings:
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
        if key not in RULE_KEYS:
            raise ConfigError("%s: unknown key %r%s (matchers: %s; settings: %s)"
                              % (where, key, did_you_mean(key, RULE_KEYS),
                                 ", ".join(RULE_MATCHERS), ", ".join(RULE_SETTINGS)))
        try:
            fields[key] = RULE_KEYS[key](raw)
        except ValueError as exc:
            raise ConfigError("%s: key %r: %r %s" % (where, key, raw, exc)) from None
        if key == "user_options":
            _check_patterns(tuple(pattern for _, pattern in fields[key]),
                            "%s: key %r" % (where, key))
        elif key in RULE_MATCHERS:
            _check_patterns(fields[key], "%s: key %r" % (where, key))
        if key in IDLE_LIMITS and fields[key] == 0:
            raise ConfigError("%s: key %r: 0 would stop every matching %s at once; give seconds "
                              "> 0 (an age limit of 0 switches it off, an idle limit cannot)"
                              % (where, key, IDLE_LIMITS[key]))
    if not any(key in fields for key in RULE_MATCHERS):
        raise ConfigError("%s: a rule needs at least one of %s" % (where, ", ".join(RULE_MATCHERS)))
    return RuleSettings(**fields)


def _check_patterns(patterns: Tuple[str, ...], where: str) -> None:
    """Refuse fnmatch patterns that cannot mean what their author wanted."""
    if not patterns:
        raise ConfigError("%s: no pattern given" % where)
    for pattern in patterns:
        if pattern.count("[") != pattern.count("]"):
            raise ConfigError("%s: bad pattern %r (unbalanced brackets)" % (where, pattern))
        try:
            re.compile(fnmatch.translate(pattern))
        except re.error as exc:
            raise ConfigError("%s: bad pattern %r (%s)" % (where, pattern, exc)) from None


def parse_rule_option(text: str, where: str) -> RuleSettings:
    """Parse ``NAME:key=value,key=value`` from ``--rule``.

    A comma-separated segment without ``=`` continues the previous value, so
    ``staff:groups=staff,admins,cull=false`` gives ``groups = staff, admins``. After
    ``user_options=``, a ``KEY=PATTERN`` segment whose KEY is not a rule key continues it too:
    ``big:user_options=image=*torch*,size=large,timeout=1h``.
    """
    name, colon, body = text.partition(":")
    if not colon or not name.strip():
        raise ConfigError("%s: %r is not NAME:key=value,..." % (where, text))
    items: Dict[str, str] = {}
    last_key = None
    for segment in body.split(","):
        key, equals, value = segment.partition("=")
        if last_key is not None and equals and _continues_user_options(last_key, key):
            items[last_key] += "," + segment.strip()
        elif equals:
            last_key = key.strip()
            if last_key in items:
                raise ConfigError("%s: key %r given twice in %r" % (where, last_key, text))
            items[last_key] = value.strip()
        elif last_key is not None and segment.strip():
            items[last_key] += "," + segment.strip()
        elif segment.strip():
            raise ConfigError("%s: %r has no '=' in %r" % (where, segment, text))
    return parse_rule(name.strip(), items, "%s %r" % (where, name.strip()))


def _continues_user_options(last_key: str, key: str) -> bool:
    """Is ``key=...`` another KEY=PATTERN pair of a ``user_options=`` value in ``--rule``?"""
    return (last_key.replace("-", "_") == "user_options"
            and key.strip().replace("-", "_") not in RULE_KEYS)


def _all_rules(values: Mapping[str, Any], sections: List[RuleSection]) -> Tuple[RuleSettings, ...]:
    """Exclusions first, then ``--rule`` options, then the config file's sections."""
    rules: List[RuleSettings] = []
    if values["exclude_users"]:
        rules.append(RuleSettings("exclude-users", users=values["exclude_users"], cull=False))
    if values["exclude_groups"]:
        rules.append(RuleSettings("exclude-groups", groups=values["exclude_groups"], cull=False))
    rules += [parse_rule_option(text, "--rule") for text in values["rule"]]
    rules += [parse_rule(section.name, section.items, section.where) for section in sections]
    names = [rule.name for rule in rules]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError("rule %r is defined more than once" % name)
    return tuple(rules)


# --- merging and validating ------------------------------------------------------------------

Layers = List[Tuple[str, Mapping[str, Any]]]


def _merge(layers: Layers) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """The value of each option from the first layer that has it (repeatables: all of them),
    and the name of the layer (or layers) it came from."""
    values: Dict[str, Any] = {}
    sources: Dict[str, str] = {}
    for option in OPTIONS:
        if option.cli_only:
            continue
        found = [(source, layer[option.name]) for source, layer in layers
                 if option.name in layer]
        if option.repeatable:
            values[option.name] = tuple(item for source, raw in found
                                        for item in convert(option, raw, source))
            sources[option.name] = ", ".join(source for source, _ in found) or "default"
        elif found:
            values[option.name] = convert(option, found[0][1], found[0][0])
            sources[option.name] = found[0][0]
        else:
            values[option.name] = option.default
            sources[option.name] = "default"
    return values, sources


def _check_url(url: str, warnings: List[str], flag: str = "--url") -> str:
    """An http(s) URL (``flag``'s), without a trailing ``/`` and without credentials.

    Credentials in the URL (``http://user:pass@host``) were never sent (the hub is sent the
    token) and must never be logged: they are dropped, with a warning that does not repeat
    them, and no error message shows them either.
    """
    try:
        parts = urlsplit(url.strip().rstrip("/"))
    except ValueError as exc:  # "Invalid IPv6 URL"
        raise ConfigError("%s: not an http(s) URL with a host (%s)" % (flag, exc)) from None
    host_port = parts.netloc.rpartition("@")[2]
    shown = urlunsplit(parts._replace(netloc=host_port))
    if parts.scheme not in ("http", "https") or not parts.hostname or \
            re.search(r'[\s\x00-\x1f\x7f<>"{}|\\^`]', host_port):
        raise ConfigError("%s: %r is not an http(s) URL with a host" % (flag, shown))
    port = host_port.rpartition("]")[2].partition(":")[2]  # after an IPv6 address's "]"
    if port and not (re.fullmatch("[0-9]{1,5}", port) and 1 <= int(port) <= 65535):
        raise ConfigError("%s: %r has a port that is not a number from 1 to 65535"
                          % (flag, shown))
    if parts.query or parts.fragment:
        raise ConfigError("%s: %r must not have a query or a fragment" % (flag, shown))
    if "@" in parts.netloc:
        warnings.append("%s: the credentials in it are dropped (they were never sent: the "
                        "hub is sent the API token)" % flag)
    return shown


def public_origin(env: Mapping[str, str]) -> Optional[str]:
    """The proxy's origin as the hub tells a managed service, or None.

    JupyterHub sets ``JUPYTERHUB_PUBLIC_HUB_URL`` (the public URL of the hub, hence of the
    proxy) and ``JUPYTERHUB_HOST`` (its origin, or the subdomain host) for the services it
    starts, when ``c.JupyterHub.public_url`` (or ``subdomain_host``) is set; both are empty or
    absent otherwise.
    """
    for name in ("JUPYTERHUB_PUBLIC_HUB_URL", "JUPYTERHUB_HOST"):
        parts = urlsplit(env.get(name, "").strip())
        if parts.scheme in ("http", "https") and parts.netloc:
            return "%s://%s" % (parts.scheme, parts.netloc)
    return None


def _server_url_base(values: Dict[str, Any], rules: Tuple[RuleSettings, ...],
                     warnings: List[str]) -> None:
    """Check the proxy's URL; --check-kernels (anywhere) cannot work without it."""
    base = values["server_url_base"]
    if base:
        base = _check_url(base, warnings, "--server-url-base")
        parts = urlsplit(base)
        if parts.path not in ("", "/"):
            warnings.append("--server-url-base: the path %r is ignored; each server's path "
                            "comes from the hub" % parts.path)
        values["server_url_base"] = "%s://%s" % (parts.scheme, parts.netloc)
    elif values["check_kernels"] or any(rule.check_kernels for rule in rules):
        raise ConfigError("--check-kernels needs the proxy's URL: give --server-url-base=URL "
                          "(JUPYTERHUB_IDLE_CULLER_SERVER_URL_BASE), or run the culler as a "
                          "hub-managed service of a hub with c.JupyterHub.public_url set")


def _settle(values: Dict[str, Any], rules: Tuple[RuleSettings, ...]) -> List[str]:
    """Refuse impossible values, fill in derived defaults; return warnings for the log."""
    warnings: List[str] = []
    values["url"] = _check_url(values["url"], warnings)
    if values["timeout"] == 0:
        raise ConfigError("--timeout: 0 would stop every server at once; give seconds > 0")
    if values["cull_every"] == 0:
        values["cull_every"] = max(1, values["timeout"] // 2)
    if values["concurrency"] == 0:
        warnings.append("concurrency=0 (unlimited in jupyterhub-idle-culler) means %d here"
                        % UNLIMITED_CONCURRENCY)
        values["concurrency"] = UNLIMITED_CONCURRENCY
    _server_url_base(values, rules, warnings)
    _check_notify(values, warnings)
    if values["output"] != "table" and not (values["once"] and values["dry_run"]):
        warnings.append("--output=%s only changes what --once --dry-run prints; it has no "
                        "effect here" % values["output"])
    return warnings


FileContents = Tuple[Dict[str, Any], List[RuleSection]]


def _config_file(cli_values: Mapping[str, Any], env_values: Mapping[str, Any],
                 read_file: ReadFile) -> Tuple[Optional[str], Optional[FileContents], bool]:
    """The config file, its contents, and whether it is a default one.

    ``--config`` wins over its variable; an empty value given either way means no file at
    all; with neither, the first default file that exists is read
    (``sources.DEFAULT_CONFIG_FILES``).
    """
    for given in (cli_values, env_values):
        if "config" in given:
            named = str(given["config"]).strip() or None
            return named, read_config_file(named, read_file) if named else None, False
    for path in DEFAULT_CONFIG_FILES:
        found = read_config_file(path, read_file, required=False)
        if found is not None:
            return path, found, True
    return None, None, True


def _layers(cli_values: Mapping[str, Any], env: Mapping[str, str], read_file: ReadFile
            ) -> Tuple[Layers, List[RuleSection], Optional[str], bool]:
    """The sources in precedence order, the config file's rule sections, its path, and
    whether that path is a default one."""
    env_values = environment_values(env)
    layers: Layers = [("command line", cli_values), ("environment", env_values)]
    config_path, found, by_default = _config_file(cli_values, env_values, read_file)
    file_values, sections = found or ({}, [])
    if config_path is not None:
        layers.append(("config file %s" % config_path, file_values))
    for name, variable in (("url", "JUPYTERHUB_API_URL"),
                           ("request_timeout", "JUPYTERHUB_REQUEST_TIMEOUT")):
        if env.get(variable):
            layers.append(("$" + variable, {name: env[variable]}))
    origin = public_origin(env)
    if origin:
        layers.append(("$JUPYTERHUB_PUBLIC_HUB_URL or $JUPYTERHUB_HOST",
                       {"server_url_base": origin}))
    layers.append(("default", {"url": DEFAULT_URL, "request_timeout": "60"}))
    return layers, sections, config_path, by_default


def load_config(cli_values: Mapping[str, Any], env: Mapping[str, str],
                read_file: ReadFile, token_required: bool = True) -> Config:
    """Merge command line, environment, config file and defaults into a validated Config.

    ``cli_values`` comes from ``options.parse_command_line``. Raises ConfigError (exit 78)
    naming the option and the value at the first problem. Without ``token_required``
    (``--show-config``) a missing token is described instead of refused.
    """
    layers, sections, config_path, by_default = _layers(cli_values, env, read_file)
    values, sources = _merge(layers)
    rules = _all_rules(values, sections)
    raw_cull_every = values["cull_every"]
    warnings = unknown_variables(env) + _settle(values, rules)
    if values["cull_every"] != raw_cull_every:
        sources["cull_every"] += " (0: half of --timeout)"
    if config_path and by_default:
        sources["config"] = "default (the file exists)"
    try:
        token = find_token(values["api_token_file"], env, read_file)
    except ConfigError as exc:
        if token_required:
            raise
        token = ("", "none: %s" % exc)
    config = _build(values, rules, env, token)
    return replace(config, config_file=config_path, warnings=tuple(warnings),
                   sources=tuple(sources.items()), notify=_notify(values, read_file))


def _build(values: Mapping[str, Any], rules: Tuple[RuleSettings, ...], env: Mapping[str, str],
           token: Tuple[str, str]) -> Config:
    client_cert, ca_bundle = (ssl_files(values["internal_certs_location"], env)
                              if values["ssl_enabled"] else (None, None))
    hub = HubSettings(
        api_url=values["url"], token=token[0],
        read_timeout=values["request_timeout"], page_size=values["api_page_size"],
        pool_size=values["concurrency"], client_cert=client_cert, ca_bundle=ca_bundle,
        server_url_base=values["server_url_base"])
    culling = CullSettings(
        timeout=values["timeout"], max_age=values["max_age"], cull_users=values["cull_users"],
        cull_admin_users=values["cull_admin_users"],
        remove_named_servers=values["remove_named_servers"],
        cull_default_servers=values["cull_default_servers"],
        cull_named_servers=values["cull_named_servers"], rules=rules,
        check_kernels=values["check_kernels"],
        max_stops_per_pass=values["max_stops_per_pass"],
        max_stop_fraction=values["max_stop_fraction"], warn_before=values["warn_before"])
    shown = tuple((option.name, show(values[option.name]) if option.name != "notify_url"
                   else shown_url(values[option.name])) for option in OPTIONS
                  if not option.cli_only and values[option.name] is not None)
    return Config(
        hub=hub, culling=culling, cull_every=values["cull_every"],
        concurrency=values["concurrency"], once=values["once"], dry_run=values["dry_run"],
        output=values["output"], log_level=values["log_level"],
        log_format=values["log_format"], metrics_port=values["metrics_port"],
        metrics_address=values["metrics_address"], metrics_file=values["metrics_file"],
        values=shown, token_source=token[1])


def show_config(config: Config) -> str:
    """The effective configuration as an INI ``[culler]`` section, each value's source in a
    comment after it; the token only by where it was found; the rules by name and source."""
    values = config.describe()
    lines = ["# Effective configuration of jupyterhub-idle-culler (value ; where it came from).",
             "# Precedence: command line > JUPYTERHUB_IDLE_CULLER_* environment > config file "
             "> default.",
             "# api token: %s (%s)" % ("<redacted>" if config.hub.token else "-",
                                       config.token_source),
             "", "[culler]"]
    for name, source in config.sources:
        if name == "rule":
            continue
        if source == "environment":
            source = "environment " + OPTIONS_BY_NAME[name].env_name
        value = config.config_file or "" if name == "config" else values.get(name, "")
        comment = "" if file_option(name) else "# "  # not a key of [culler]: shown only
        lines.append("%s%s = %s ; %s" % (comment, name, value, source))
    for rule in config.culling.rules:
        lines.append("# rule %s: %s" % (rule.name, _rule_text(rule)))
    for warning in config.warnings:
        lines.append("# warning: %s" % warning)
    return "\n".join(lines) + "\n"


def _rule_text(rule: RuleSettings) -> str:
    parts = []
    for key in RULE_MATCHERS + RULE_SETTINGS:
        value = getattr(rule, key)
        if value not in (None, ()):
            parts.append("%s=%s" % (key, show(value)))
    return ", ".join(parts)


# --- notifications (--notify-url, --notify-header-file, --warn-before) -----------------------

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)


def shown_url(url: str) -> str:
    """``https://hooks.example.org/<redacted>``: a secret URL as ``--show-config`` and
    ``reload-changed`` show it, scheme and host only (credentials, path and query hidden)."""
    parts = urlsplit(url)
    return "%s://%s/<redacted>" % (parts.scheme, parts.netloc.rpartition("@")[2])


def _check_notify(values: Dict[str, Any], warnings: List[str]) -> None:
    """Refuse a ``--notify-url`` that is not an http(s) URL with a host, without showing it;
    warn when the warning time is shorter than the interval (a server may then go from
    outside its warning time to its stop between two passes, unwarned)."""
    url = values["notify_url"]
    if url:
        url = url.strip()
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            host = None
        if parts.scheme not in ("http", "https") or not host or \
                re.search(r"[\s\x00-\x1f\x7f]", url):
            raise ConfigError("--notify-url: not an http(s) URL with a host (the value is a "
                              "secret and not shown)")
        values["notify_url"] = url
    elif values["notify_header_file"]:
        warnings.append("--notify-header-file has no effect without --notify-url")
    warn_before = values["warn_before"]
    if warn_before and warn_before < values["cull_every"]:
        warnings.append("--warn-before=%ds is shorter than --cull-every=%ds: a server may be "
                        "stopped without a warning when its warning time falls between two "
                        "passes" % (warn_before, values["cull_every"]))


def read_header(path: str, read_file: ReadFile) -> Tuple[str, str]:
    """The one ``Name: value`` line of ``--notify-header-file``; ConfigError otherwise
    (naming the file, never its contents)."""
    try:
        text = read_file(path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError("--notify-header-file: cannot read %s: %s" % (path, reason)) from None
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    name, colon, value = lines[0].partition(":") if len(lines) == 1 else ("", "", "")
    name, value = name.strip(), value.strip()
    if not colon or not _HEADER_NAME.fullmatch(name) or not value or \
            re.search(r"[\x00-\x1f\x7f]", value):
        raise ConfigError("--notify-header-file: %s must hold one line 'Name: value' "
                          "(e.g. 'Authorization: Bearer ...')" % path)
    return name, value


def _notify(values: Mapping[str, Any], read_file: ReadFile) -> Optional[NotifySettings]:
    if not values["notify_url"]:
        return None
    header = (read_header(values["notify_header_file"], read_file)
              if values["notify_header_file"] else None)
    return NotifySettings(url=values["notify_url"], header=header,
                          hub=values["server_url_base"] or values["url"],
                          read_timeout=values["request_timeout"])
