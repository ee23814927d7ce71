"""How the frozen configuration is built: merge the sources, convert, validate, fill the fields.

``load_config`` takes the raw command-line values (``options.parse_command_line``), the
environment mapping and a ``read_file`` callable, merges the sources with the precedence
command line > environment > config file > default, converts each value with its option's
converter, validates, and fills the settings dataclasses declared in ``settings`` (and
re-exported here: ``config.Config``, ``config.CullSettings``, ...) by a loop over their fields:
each declared field from its option, the others (the token, the rules) derived here. Every
problem is a ``ConfigError`` naming the option (or the rule section and key) and the value:
exit 78 before anything is sent to the hub. No network I/O and no ``os.environ`` here.
"""

import re
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

from idle_culler_daemon.errors import ConfigError
from idle_culler_daemon.log import REDACTED
from idle_culler_daemon.options import file_option
from idle_culler_daemon.rules import (  # noqa: F401 - parse_rule_option, relaxing_rules too
    all_rules,
    parse_rule,
    parse_rule_option,
    relaxing_rules,
    rule_text,
)
from idle_culler_daemon.settings import (  # noqa: F401 - the settings types, read from here
    OPTIONS,
    OPTIONS_BY_NAME,
    UNLIMITED_CONCURRENCY,
    Config,
    CullSettings,
    HubSettings,
    Option,
    RuleSettings,
    option_of,
    restart_changes,
    value_of,
    with_values,
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
class NotifySettings:
    """Where notifications go: derived from ``--notify-url`` and ``--notify-header-file``
    (``header``: name, value), both secrets; ``hub`` names the hub in the payloads."""

    url: str = field(repr=False)
    header: Optional[Tuple[str, str]] = field(default=None, repr=False)
    hub: str = ""
    read_timeout: float = 60.0  # the hub's (--request-timeout)

    @property
    def secrets(self) -> Tuple[str, ...]:
        """The URL, its path and query alone (an error may name only those), the header."""
        parts = urlsplit(self.url)
        path = parts.path + ("?" + parts.query if parts.query else "")
        found = (self.url, path, parts.query, self.header[1] if self.header else "")
        return tuple(secret for secret in found if secret)


# --- converting ------------------------------------------------------------------------------

def convert(option: Option, raw: Any, source: str) -> Any:
    """Convert one raw value with the option's converter; errors name option and source."""
    try:
        return option.convert(raw)
    except ValueError as exc:
        raise ConfigError("%s (from %s): %r %s" % (option.flag, source, raw, exc)) from None


# --- merging and validating ------------------------------------------------------------------

Layers = List[Tuple[str, Mapping[str, Any]]]
_FILE = "config file "  # the name of the config file's layer, before its path


def _merge(layers: Layers) -> Tuple[Dict[str, Any], Dict[str, str], List[str]]:
    """The value of each option from the first layer that has it (repeatables: all of them),
    the name of the layer (or layers) it came from, and the options that the config file sets
    but an earlier layer (command line, environment) overrides."""
    values: Dict[str, Any] = {}
    sources: Dict[str, str] = {}
    overridden: List[str] = []
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
            if any(source.startswith(_FILE) for source, _ in found[1:]):
                overridden.append(option.name)
        else:
            values[option.name] = option.default
            sources[option.name] = "default"
    return values, sources, overridden


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
                 read_file: ReadFile, warnings: List[str]
                 ) -> Tuple[Optional[str], Optional[FileContents], bool]:
    """The config file, its contents, and whether it is a default one.

    ``--config`` wins over its variable; an empty value given either way means no file at
    all; with neither, the first default file that exists is read
    (``sources.DEFAULT_CONFIG_FILES``); one that is skipped adds to ``warnings``.
    """
    for given in (cli_values, env_values):
        if "config" in given:
            named = str(given["config"]).strip() or None
            return named, read_config_file(named, read_file) if named else None, False
    for path in DEFAULT_CONFIG_FILES:
        found = read_config_file(path, read_file, required=False, warnings=warnings)
        if found is not None:
            return path, found, True
    return None, None, True


def _layers(cli_values: Mapping[str, Any], env: Mapping[str, str], read_file: ReadFile,
            warnings: List[str]) -> Tuple[Layers, List[RuleSection], Optional[str], bool]:
    """The sources in precedence order, the config file's rule sections, its path, and
    whether that path is a default one."""
    env_values = environment_values(env)
    layers: Layers = [("command line", cli_values), ("environment", env_values)]
    config_path, found, by_default = _config_file(cli_values, env_values, read_file, warnings)
    file_values, sections = found or ({}, [])
    if config_path is not None:
        layers.append((_FILE + config_path, file_values))
    for name, variable in (("url", "JUPYTERHUB_API_URL"),
                           ("request_timeout", "JUPYTERHUB_REQUEST_TIMEOUT")):
        if env.get(variable):
            layers.append(("$" + variable, {name: env[variable]}))
    origin = public_origin(env)
    if origin:
        layers.append(("$JUPYTERHUB_PUBLIC_HUB_URL or $JUPYTERHUB_HOST",
                       {"server_url_base": origin}))
    return layers, sections, config_path, by_default


def load_config(cli_values: Mapping[str, Any], env: Mapping[str, str],
                read_file: ReadFile, token_required: bool = True) -> Config:
    """Merge command line, environment, config file and defaults into a validated Config.

    ``cli_values`` comes from ``options.parse_command_line``. Raises ConfigError (exit 78)
    naming the option and the value at the first problem. Without ``token_required``
    (``--show-config``) a missing token is described instead of refused.
    """
    file_warnings: List[str] = []
    layers, sections, config_path, by_default = _layers(cli_values, env, read_file,
                                                        file_warnings)
    values, sources, overridden = _merge(layers)
    rules = all_rules(values, sections)
    raw_cull_every = values["cull_every"]
    warnings = file_warnings + unknown_variables(env) + _settle(values, rules)
    if values["cull_every"] != raw_cull_every:
        sources["cull_every"] += " (0: half of --timeout)"
    values["config"] = config_path
    if config_path and by_default:
        sources["config"] = "default (the file exists)"
    try:
        token = find_token(values["api_token_file"], env, read_file)
    except ConfigError as exc:
        if token_required:
            raise
        token = ("", "none: %s" % exc)
    client_cert, ca_bundle = (ssl_files(values["internal_certs_location"], env)
                              if values["ssl_enabled"] else (None, None))
    env_ca_bundle = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE") or None
    derived = {"hub.token": token[0], "hub.pool_size": values["concurrency"],
               "hub.client_cert": client_cert, "hub.ca_bundle": ca_bundle or env_ca_bundle,
               "hub.env_ca_bundle": env_ca_bundle,
               "culling.rules": rules, "warnings": tuple(warnings),
               "sources": tuple(sources.items()), "token_source": token[1],
               "overridden": tuple(overridden), "notify": _notify(values, read_file)}
    return _build(Config, values, derived)


def _build(cls: type, values: Mapping[str, Any], derived: Mapping[str, Any],
           prefix: str = "") -> Any:
    """Settings of type ``cls``: each declared field from its option's value, each section
    built the same way, each other field from ``derived`` (by its dotted path) or its
    default."""
    given: Dict[str, Any] = {}
    for item in fields(cls):
        option = option_of(item)
        if option is not None:
            given[item.name] = values[option.name]
        elif isinstance(item.type, type) and is_dataclass(item.type):
            given[item.name] = _build(item.type, values, derived, prefix + item.name + ".")
        elif prefix + item.name in derived:
            given[item.name] = derived[prefix + item.name]
    return cls(**given)


def show_config(config: Config) -> str:
    """The effective configuration as an INI ``[culler]`` section, each value's source in a
    comment after it; the token only by where it was found; the rules by name and source."""
    values = config.describe()
    lines = ["# Effective configuration of jupyterhub-idle-culler (value ; where it came from).",
             "# Precedence: command line > JUPYTERHUB_IDLE_CULLER_* environment > config file "
             "> default.",
             "# api token: %s (%s)" % (REDACTED if config.hub.token else "-",
                                       config.token_source),
             "", "[culler]"]
    for name, source in config.sources:
        if name == "rule":
            continue
        if source == "environment":
            source = "environment " + OPTIONS_BY_NAME[name].env_name
        if name in config.overridden:
            source += " (overrides the config file's value)"
        comment = "" if file_option(name) else "# "  # not a key of [culler]: shown only
        lines.append("%s%s = %s ; %s" % (comment, name, values.get(name, ""), source))
    for rule in config.culling.rules:
        lines.append("# rule %s: %s" % (rule.name, rule_text(rule)))
    for warning in config.warnings:
        lines.append("# warning: %s" % warning)
    return "\n".join(lines) + "\n"


# --- notifications (--notify-url, --notify-header-file, --warn-before) -----------------------

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)


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
