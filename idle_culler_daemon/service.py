"""The culler as a service the loop drives: preflight, one pass at a time, reload, metrics.

A :class:`Culler` owns what lives across passes: the hub client, the worker pool, what the
preflight found (the hub's version, whether it filters by state) and the servers already warned
about. ``daemon.run_forever`` calls :meth:`Culler.run_pass` every interval and
:meth:`Culler.reload` between passes after SIGHUP.

A reload is all or nothing, and never ends the daemon: the new configuration is loaded, its
metrics file tried and its token preflighted against the hub before anything is swapped; any
problem refuses it and the running configuration stays (docs/behaviour.md#reload).
"""

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from functools import partial
from typing import Callable, Dict, List, Optional, Set, Tuple
from urllib.parse import urlsplit

from idle_culler_daemon import scopes
from idle_culler_daemon.clock import ClockWatch
from idle_culler_daemon.config import Config, relaxing_rules, restart_changes, with_values
from idle_culler_daemon.cull import Runtime, listing_failed, run_pass
from idle_culler_daemon.errors import (
    ConfigError,
    HubAuthError,
    HubError,
    HubHTTPError,
    HubProtocolError,
)
from idle_culler_daemon.hub import HubClient, RetryPolicy
from idle_culler_daemon.log import get_logger
from idle_culler_daemon.metrics import Metrics
from idle_culler_daemon.stats import PassStats
from idle_culler_daemon.webhook import Notifications

log = get_logger(__name__)

#: ``state=`` filters of ``GET /users`` exist from JupyterHub 1.3, roles and scopes from 2.0.
STATE_FILTER_SINCE = (1, 3)
SCOPES_SINCE = (2, 0)
API_PATH = "/hub/api"
#: The shortest lifetime of a token minted for a kernel check (--check-kernels).
CHECK_TOKEN_MIN_S = 60

#: Applies a configuration's logging (level, format), redacting its token and these others.
LoggingHook = Callable[[Config, Tuple[str, ...]], None]


def version_tuple(version: str) -> Tuple[int, ...]:
    """``"5.2.1rc1"`` -> ``(5, 2, 1)``: digits of the first three parts, 0 when none."""
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _no_logging(config: Config, also_redact: Tuple[str, ...]) -> None:
    return None


def not_the_api(url: str, exc: HubError) -> ConfigError:
    """The configuration error for a ``--url`` that answers, but not as the hub's API does."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if not path.endswith(API_PATH):
        base = path[: -len("/hub")] if path.endswith("/hub") else path
        hint = "the JupyterHub API is under %s: did you mean --url=%s://%s%s%s?" % (
            API_PATH, parts.scheme, parts.netloc, base, API_PATH)
    else:
        hint = "check --url: GET %s/ on a JupyterHub answers JSON with its version" % url
    return ConfigError("--url=%s does not look like the JupyterHub API (%s); %s"
                       % (url, exc, hint))


def warn_about_rules(config: Config) -> None:
    """One WARNING per rule that lets users who choose its values be culled less."""
    for rule, relaxed in relaxing_rules(config.culling):
        log.warning("rule-chosen-by-users", rule=rule, relaxes=relaxed,
                    detail="this rule matches profiles or user_options, which users choose "
                    "when they start a server: any user can pick it for their own servers and "
                    "be culled less (KubeSpawner refuses a profile that is not in the "
                    "profile_list it offers that user; user_options are not checked)")


def plain_http_hint(url: str, error: str) -> str:
    """A hint for an ``https://`` URL whose hub seems to speak plain HTTP, else "".

    Such a hub either answers the TLS handshake with bytes that are not TLS (SSL's "wrong
    version number") or waits for an HTTP request that never comes (a timeout per attempt).
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not any(sign in error for sign in (
            "WRONG_VERSION_NUMBER", "wrong version number", "SSLError", "timed out",
            "Timeout")):
        return ""
    return ("; if the hub serves plain HTTP there (JupyterHub's own port does unless "
            "internal_ssl is on), use --url=http://%s%s" % (parts.netloc, parts.path))


def preflight_check(hub: HubClient, config: Config) -> bool:
    """The preflight of ``config`` through ``hub``: the hub's version and the token's own
    scopes; returns whether to filter the listing by state. Raises ConfigError when ``--url``
    is not the hub's API, when the hub refuses the token, or reports its scopes and a needed
    one is absent; HubError when the hub cannot be asked."""
    try:
        version = hub.version()
    except (HubHTTPError, HubProtocolError) as exc:  # it answered, but not as the API
        raise not_the_api(config.hub.api_url, exc) from None
    try:
        owner = hub.whoami()
    except HubAuthError as exc:  # the token itself is refused: restarting cannot help
        raise ConfigError("the hub refused the API token: %s" % exc) from None
    found = scopes.verdict(owner, config.culling,
                           has_scopes=version_tuple(version) >= SCOPES_SINCE,
                           dry_run=config.dry_run)
    if found.missing:
        raise ConfigError("the API token lacks the scope%s %s (the hub granted: %s)"
                          % ("s" if len(found.missing) > 1 else "",
                             ", ".join(found.missing), ", ".join(found.granted) or "none"))
    if not found.reported:
        log.info("preflight", hub_version=version,
                 scopes="not-reported (missing scopes show up as 403 answers)")
    else:
        for scope in found.advised:
            log.warning("preflight-scope", missing=scope, detail="without it the hub hides "
                        "'created', so users who were never active are not deleted")
        for scope in found.unused:
            log.warning("preflight-scope", missing=scope, detail="a dry run sends no "
                        "DELETE; the same run without --dry-run needs this scope")
        log.info("preflight", hub_version=version, scopes="ok")
    return version_tuple(version) >= STATE_FILTER_SINCE


def check_token_s(read_timeout: float) -> int:
    """The lifetime of a token minted for a kernel check: two requests to the server, each
    within the request timeout, with room to spare; at least ``CHECK_TOKEN_MIN_S``."""
    return max(CHECK_TOKEN_MIN_S, math.ceil(2 * read_timeout))


NotificationCounts = Tuple[Dict[str, int], int, int]  # sent per event, failed, dropped


def _record(metrics: Optional[Metrics], stats: PassStats, notified: NotificationCounts
            ) -> None:
    """Add a pass's figures and the notification totals to the metrics, if any; a file that
    cannot be written is logged."""
    if metrics is None:
        return
    metrics.notified(*notified)
    try:
        metrics.record(stats)
    except OSError as exc:
        log.error("metrics-failed", error=str(exc))


def log_changes(old: Config, new: Config) -> List[str]:
    """Log each option, the token and the rules that differ; return their names."""
    old_values, new_values = old.describe(), new.describe()
    changed = sorted(key for key in set(old_values) | set(new_values)
                     if old_values.get(key) != new_values.get(key))
    for key in changed:
        log.info("reload-changed", option=key, old=old_values.get(key, "-"),
                 new=new_values.get(key, "-"))
    if new.hub.token != old.hub.token:
        changed.append("credential")
        log.info("reload-changed", option="credential", detail="replaced")
    if old.culling.rules != new.culling.rules and "rule" not in changed:
        changed.append("rules")
        log.info("reload-changed", option="rules",
                 old=",".join(rule.name for rule in old.culling.rules) or "-",
                 new=",".join(rule.name for rule in new.culling.rules) or "-")
    return changed


class Culler:
    """One configured culler; the hub client and the pool are rebuilt on reload.

    ``load`` re-reads the configuration (for SIGHUP); ``stop`` is the one stop signal (set on
    SIGTERM): the hub client reads it to start no more retries, and each pass to take no more
    pages or jobs; ``tick_s`` is how often the pass feeds the watchdog while it waits;
    ``logging`` applies a configuration's logging (given by ``cli``, which owns the
    environment).
    """

    # shape: the collaborators a service is wired with, each by keyword
    def __init__(self, config: Config, load: Callable[[], Config], *,
                 metrics: Optional[Metrics] = None, stop: Optional[threading.Event] = None,
                 tick_s: float = 1.0,
                 clock: Callable[[], datetime] = partial(datetime.now, timezone.utc),
                 logging: LoggingHook = _no_logging) -> None:
        self._load = load
        self._stop = threading.Event() if stop is None else stop
        self._metrics = metrics
        self._clock = clock
        self._tick_s = tick_s
        self._logging = logging
        self._warned: Set[str] = set()
        self._clock_watch = ClockWatch()  # what was said about the hub's clock
        self.notifications = Notifications()  # the webhook and the warned stretches
        self._fallback: Optional[Config] = None  # the last verified config, after a reload
        self.last_stats: Optional[PassStats] = None
        self.policy = RetryPolicy()
        self._apply(config, HubClient(config.hub, self.policy, cancel=self._stop))

    def _apply(self, config: Config, hub: HubClient, state_filter: Optional[bool] = None
               ) -> None:
        """Put ``config`` in force with its hub client; ``state_filter`` is what its preflight
        found (None: not preflighted yet)."""
        self.config = config
        self.interval_s = float(config.cull_every)
        self.hub = hub
        self.executor = ThreadPoolExecutor(max_workers=config.concurrency,
                                           thread_name_prefix="cull")
        self._checked = state_filter is not None
        self._use_state_filter = True if state_filter is None else state_filter
        self.notifications.swap(config.notify)
        if self._metrics is not None:
            self._metrics.configure(self.interval_s, [rule.name for rule in config.culling.rules
                                                      if rule.cull is not False])

    def close(self) -> None:
        """Close the pool, the hub client and the webhook (bounded: ``webhook.DRAIN_S``)."""
        self._close_pass_tools()
        self.notifications.close()

    def _close_pass_tools(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.hub.close()

    def notification_counts(self) -> NotificationCounts:
        """The webhooks' ``(sent per event, failed, dropped)`` since start."""
        return self.notifications.counts()

    def worst_case_call_s(self) -> float:
        return self.policy.worst_case_call_s(self.config.hub.read_timeout)

    # -- reload -------------------------------------------------------------------------------

    def reload(self) -> str:
        """Re-read the configuration and apply it whole, or refuse it and keep the old one.

        Returns the ``STATUS=`` line that says what happened. Never raises: whatever goes wrong
        (an unreadable file, a bad value, a token the hub refuses or that lacks a scope the
        new settings need, even a bug) refuses the reload.
        """
        old = self.config
        try:
            new = self._load()
        except ConfigError as exc:
            return self._refuse(str(exc))
        except Exception as exc:  # a reload must never end the daemon
            log.exception("reload-refused", error=str(exc), detail="an unexpected error; the "
                          "previous configuration stays")
            return "reload refused (unexpected error); the previous configuration stays"
        self._logging(old, new.secrets)  # the new token (and URL) are secrets from now on
        restart = restart_changes(old, new)
        new = with_values(new, {name: running for name, (running, _) in restart.items()})
        try:
            hub, state_filter = self._try(new)
        except ConfigError as exc:
            self._logging(old, ())
            return self._refuse(str(exc))
        for name, (running, wanted) in restart.items():
            log.warning("reload-needs-restart", option=name, running=running, new=wanted,
                        detail="kept until the culler is restarted (systemctl restart)")
        changed = log_changes(old, new)
        if new.overridden:
            log.info("reload-overridden", options=",".join(new.overridden),
                     detail="the config file sets them, but the command line or the "
                     "environment wins: change them there, then restart")
        warn_about_rules(new)
        self._close_pass_tools()
        self._apply(new, hub, state_filter)
        # Until the new configuration is preflighted, keep the last one that was.
        self._fallback = (self._fallback or old) if state_filter is None else None
        self._logging(new, ())  # the old token is forgotten only now
        log.info("reloaded", changes=len(changed), verified=state_filter is not None)
        status = "reloaded: %s" % (", ".join(changed) + " changed" if changed else "no change")
        return status + ("; a restart is needed for %s" % ", ".join(restart) if restart else "")

    @staticmethod
    def _refuse(error: str) -> str:
        log.error("reload-refused", error=error, detail="the previous configuration stays")
        return "reload refused, the previous configuration stays: %s" % error

    def _try(self, new: Config) -> Tuple[HubClient, Optional[bool]]:
        """Everything that can refuse ``new`` before it is swapped in: the preflight of its
        token and settings, then its metrics file. Returns its hub client and the preflight's
        finding (None: the hub could not be asked; the preflight then runs before the next
        pass, and a refusal there restores the previous configuration)."""
        hub = HubClient(new.hub, self.policy, cancel=self._stop)
        try:
            try:
                state_filter: Optional[bool] = preflight_check(hub, new)
            except HubError as exc:
                log.warning("reload-unverified", error=str(exc), detail="the hub could not "
                            "be asked; the new configuration is checked before the next pass")
                state_filter = None
            self._switch_metrics_file(new)
        except ConfigError:
            hub.close()
            raise
        return hub, state_filter

    def _switch_metrics_file(self, new: Config) -> None:
        """Point the metrics at a new ``--metrics-file`` (written once now), or refuse."""
        if new.metrics_file == self.config.metrics_file or not new.metrics_file:
            if self._metrics is not None:
                self._metrics.set_file(new.metrics_file)
            return
        metrics = self._metrics or Metrics()  # ConfigError without prometheus-client
        try:
            metrics.write_file(new.metrics_file)
        except OSError as exc:
            raise ConfigError("--metrics-file: cannot write %s: %s"
                              % (new.metrics_file, exc.strerror or exc)) from None
        metrics.set_file(new.metrics_file)
        self._metrics = metrics

    # -- preflight ----------------------------------------------------------------------------

    def preflight(self) -> None:
        """Ask the hub for its version and the token's own scopes; refuse missing scopes.

        Raises ConfigError when ``--url`` is not the hub's API, when the hub refuses the
        token, or reports its scopes and a needed one is absent; HubError when the hub cannot
        be asked (tried again at the next pass).
        """
        self._use_state_filter = preflight_check(self.hub, self.config)
        self._checked = True

    def _preflight_or_fall_back(self) -> None:
        """The preflight before a pass; after an unverified reload, a refusal restores the
        previous configuration instead of ending the daemon."""
        try:
            self.preflight()
        except ConfigError as exc:
            if self._fallback is None:
                raise
            old, self._fallback = self._fallback, None
            log.error("reload-refused", error=str(exc), detail="found before the first pass "
                      "after the reload; the previous configuration is restored")
            self._close_pass_tools()
            self._apply(old, HubClient(old.hub, self.policy, cancel=self._stop))
            if self._metrics is not None:
                self._metrics.set_file(old.metrics_file)
            self._logging(old, ())
            self.preflight()
        self._fallback = None

    def run_pass(self, heartbeat: Callable[[], None]) -> PassStats:
        """Preflight if not done yet, then one pass; a hub that cannot be asked ends it."""
        if not self._checked:
            try:
                self._preflight_or_fall_back()
            except HubError as exc:  # the hub cannot be asked: this pass fails, nothing sent
                stats = listing_failed(PassStats(dry_run=self.config.dry_run), exc)
                if stats.listing_error:
                    stats.listing_error += plain_http_hint(self.config.hub.api_url, str(exc))
                _record(self._metrics, stats, self.notification_counts())
                return stats
        runtime = Runtime(
            pool=self.executor, concurrency=self.config.concurrency,
            dry_run=self.config.dry_run, use_state_filter=self._use_state_filter,
            heartbeat=heartbeat, stop=self._stop, tick_s=self._tick_s,
            stall_s=self.worst_case_call_s(),
            check_token_s=check_token_s(self.config.hub.read_timeout),
            outbox=self.notifications.webhook, forewarned=self.notifications.forewarned)
        self.last_stats = run_pass(self.hub, self.config.culling, self._clock(), runtime,
                                   self._warned, self._clock_watch)
        self.notifications.report()  # one WARNING per pass at most about failed notices
        _record(self._metrics, self.last_stats, self.notification_counts())
        return self.last_stats
