"""The culler as a service the loop drives: preflight, one pass at a time, reload, metrics.

A :class:`Culler` owns what lives across passes: the hub client, the worker pool, what the
preflight found (the hub's version, whether it filters by state) and the servers already warned
about. ``daemon.run_forever`` calls :meth:`Culler.run_pass` every interval and
:meth:`Culler.reload` between passes after SIGHUP.

A reload is all or nothing, and never ends the daemon: the new configuration is loaded, its
metrics file tried and its token preflighted against the hub before anything is swapped; any
problem refuses it and the running configuration stays (docs/behaviour.md#reload).
"""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timezone
from typing import Callable, Dict, List, Optional, Set, Tuple
from urllib.parse import urlsplit

from idle_culler_daemon import scopes
from idle_culler_daemon.config import Config
from idle_culler_daemon.cull import Runtime, run_pass
from idle_culler_daemon.errors import (
    ConfigError,
    HubAuthError,
    HubError,
    HubHTTPError,
    HubProtocolError,
)
from idle_culler_daemon.forewarn import Warned
from idle_culler_daemon.hub import HubClient, RetryPolicy
from idle_culler_daemon.log import get_logger
from idle_culler_daemon.metrics import Metrics
from idle_culler_daemon.stats import PassStats
from idle_culler_daemon.webhook import DRAIN_S, Webhook

log = get_logger(__name__)

#: ``state=`` filters of ``GET /users`` exist from JupyterHub 1.3, roles and scopes from 2.0.
STATE_FILTER_SINCE = (1, 3)
SCOPES_SINCE = (2, 0)
#: Options a running daemon cannot change: a reload keeps their old values and says so.
RESTART_ONLY = ("metrics_port", "metrics_address", "once")
API_PATH = "/hub/api"

#: Applies a configuration's logging (level, format), redacting its token and these others.
LoggingHook = Callable[[Config, Tuple[str, ...]], None]


def version_tuple(version: str) -> Tuple[int, ...]:
    """``"5.2.1rc1"`` -> ``(5, 2, 1)``: digits of the first three parts, 0 when none."""
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


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


def _with_values(config: Config, **changes: object) -> Config:
    """``config`` with some options changed, its text values (``describe``) kept in step."""
    values = dict(config.values)
    for name, value in changes.items():
        if value is None:
            values.pop(name, None)
        else:
            values[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return replace(config, values=tuple(values.items()), **changes)  # type: ignore[arg-type]


class Culler:
    """One configured culler; the hub client and the pool are rebuilt on reload.

    ``load`` re-reads the configuration (for SIGHUP); ``cancel`` is set on SIGTERM and stops
    retries in flight; ``tick_s`` is how often the pass feeds the watchdog while it waits;
    ``logging`` applies a configuration's logging (given by ``cli``, which owns the
    environment).
    """

    # shape: the collaborators a service is wired with, each by keyword
    def __init__(self, config: Config, load: Callable[[], Config], *,
                 metrics: Optional[Metrics] = None, cancel: Optional[threading.Event] = None,
                 tick_s: float = 1.0, clock: Callable[[], datetime] = _utc_now,
                 logging: LoggingHook = _no_logging) -> None:
        self._load = load
        self._cancel = cancel
        self._metrics = metrics
        self._clock = clock
        self._tick_s = tick_s
        self._logging = logging
        self._warned: Set[str] = set()
        self._forewarned = Warned()  # the stretches warned about (--warn-before)
        self.webhook: Optional[Webhook] = None  # --notify-url
        self._closed_counts: Tuple[Counter, int, int] = (Counter(), 0, 0)  # of past webhooks
        self._fallback: Optional[Config] = None  # the last verified config, after a reload
        self.last_stats: Optional[PassStats] = None
        self.policy = RetryPolicy()
        self._apply(config, HubClient(config.hub, self.policy, cancel=cancel))

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
        self._swap_webhook(config)
        if self._metrics is not None:
            self._metrics.configure(self.interval_s, [rule.name for rule in config.culling.rules
                                                      if rule.cull is not False])

    def close(self) -> None:
        """Close the pool and the hub client; the webhook too (bounded: ``DRAIN_S``)."""
        self._close_pass_tools()
        self._close_webhook()

    def _close_webhook(self) -> None:
        if self.webhook is None:
            return
        self.webhook.close(DRAIN_S)
        sent, failed, dropped = self.webhook.counts()
        total = self._closed_counts
        self._closed_counts = (total[0] + Counter(sent), total[1] + failed, total[2] + dropped)
        self.webhook = None

    def notification_counts(self) -> Tuple[Dict[str, int], int, int]:
        """``(sent per event, failed, dropped)`` since start, across reloads that replaced the
        webhook: for ``notifications_sent_total{event}``, ``notifications_failed_total`` and
        ``notifications_dropped_total``."""
        sent, failed, dropped = self._closed_counts
        if self.webhook is not None:
            now_sent, now_failed, now_dropped = self.webhook.counts()
            return dict(sent + Counter(now_sent)), failed + now_failed, dropped + now_dropped
        return dict(sent), failed, dropped

    def _close_pass_tools(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.hub.close()

    def _swap_webhook(self, config: Config) -> None:
        """Keep the running webhook while ``--notify-url`` (and its header, ...) stay the
        same; otherwise close it (its queue drains for ``DRAIN_S`` at most) and start anew."""
        if self.webhook is not None and self.webhook.settings == config.notify:
            return
        self._close_webhook()
        self.webhook = Webhook(config.notify) if config.notify is not None else None

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
        loaded = new
        restart = [name for name in RESTART_ONLY if getattr(new, name) != getattr(old, name)]
        new = _with_values(new, **{name: getattr(old, name) for name in restart})
        try:
            hub, state_filter = self._try(new)
        except ConfigError as exc:
            self._logging(old, ())
            return self._refuse(str(exc))
        for name in restart:
            log.warning("reload-needs-restart", option=name, running=getattr(old, name),
                        new=getattr(loaded, name), detail="kept until the culler is restarted "
                        "(systemctl restart)")
        changed = self._log_changes(old, new)
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
        hub = HubClient(new.hub, self.policy, cancel=self._cancel)
        try:
            try:
                state_filter: Optional[bool] = self._preflight(hub, new)
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

    @staticmethod
    def _log_changes(old: Config, new: Config) -> List[str]:
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

    # -- preflight ----------------------------------------------------------------------------

    def preflight(self) -> None:
        """Ask the hub for its version and the token's own scopes; refuse missing scopes.

        Raises ConfigError when ``--url`` is not the hub's API, when the hub refuses the
        token, or reports its scopes and a needed one is absent; HubError when the hub cannot
        be asked (tried again at the next pass).
        """
        self._use_state_filter = self._preflight(self.hub, self.config)
        self._checked = True

    def _preflight(self, hub: HubClient, config: Config) -> bool:
        """The preflight of ``config`` through ``hub``; returns whether to filter by state."""
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
            self._apply(old, HubClient(old.hub, self.policy, cancel=self._cancel))
            if self._metrics is not None:
                self._metrics.set_file(old.metrics_file)
            self._logging(old, ())
            self.preflight()
        self._fallback = None

    # -- a pass -------------------------------------------------------------------------------

    def run_pass(self, heartbeat: Callable[[], None], should_stop: Callable[[], bool]
                 ) -> PassStats:
        """Preflight if not done yet, then one pass; a hub that cannot be asked ends it."""
        if not self._checked:
            try:
                self._preflight_or_fall_back()
            except HubError as exc:
                stats = PassStats(listing_error=str(exc), dry_run=self.config.dry_run)
                stats.count_error(exc.status)
                self._record(stats)
                return stats
        runtime = Runtime(
            pool=self.executor, concurrency=self.config.concurrency,
            dry_run=self.config.dry_run, use_state_filter=self._use_state_filter,
            heartbeat=heartbeat, should_stop=should_stop, tick_s=self._tick_s,
            stall_s=self.worst_case_call_s(), outbox=self.webhook,
            forewarned=self._forewarned)
        self.last_stats = run_pass(self.hub, self.config.culling, self._clock(), runtime,
                                   self._warned)
        if self.webhook is not None:
            self.webhook.report()  # one WARNING per pass at most about failed notifications
        self._record(self.last_stats)
        return self.last_stats

    def _record(self, stats: PassStats) -> None:
        if self._metrics is None:
            return
        try:
            self._metrics.record(stats)
        except OSError as exc:
            log.error("metrics-failed", error=str(exc))
