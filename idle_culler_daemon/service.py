"""The culler as a service the loop drives: preflight, one pass at a time, reload, metrics.

A :class:`Culler` owns what lives across passes: the hub client, the worker pool, what the
preflight found (the hub's version, whether it filters by state) and the servers already warned
about. ``daemon.run_forever`` calls :meth:`Culler.run_pass` every interval and
:meth:`Culler.reload` between passes after SIGHUP.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Callable, Optional, Set, Tuple

from idle_culler_daemon import scopes
from idle_culler_daemon.config import Config
from idle_culler_daemon.cull import Runtime, run_pass
from idle_culler_daemon.errors import ConfigError, HubAuthError, HubError
from idle_culler_daemon.hub import HubClient, RetryPolicy
from idle_culler_daemon.log import get_logger
from idle_culler_daemon.metrics import Metrics
from idle_culler_daemon.stats import PassStats

log = get_logger(__name__)

#: ``state=`` filters of ``GET /users`` exist from JupyterHub 1.3, roles and scopes from 2.0.
STATE_FILTER_SINCE = (1, 3)
SCOPES_SINCE = (2, 0)


def version_tuple(version: str) -> Tuple[int, ...]:
    """``"5.2.1rc1"`` -> ``(5, 2, 1)``: digits of the first three parts, 0 when none."""
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Culler:
    """One configured culler; the hub client and the pool are rebuilt on reload.

    ``load`` re-reads the configuration (for SIGHUP); ``cancel`` is set on SIGTERM and stops
    retries in flight; ``tick_s`` is how often the pass feeds the watchdog while it waits.
    """

    def __init__(self, config: Config, load: Callable[[], Config], *,
                 metrics: Optional[Metrics] = None, cancel: Optional[threading.Event] = None,
                 tick_s: float = 1.0, clock: Callable[[], datetime] = _utc_now) -> None:
        self._load = load
        self._cancel = cancel
        self._metrics = metrics
        self._clock = clock
        self._tick_s = tick_s
        self._warned: Set[str] = set()
        self.last_stats: Optional[PassStats] = None
        self._apply(config)

    def _apply(self, config: Config) -> None:
        self.config = config
        self.interval_s = float(config.cull_every)
        self.policy = RetryPolicy()
        self.hub = HubClient(config.hub, self.policy, cancel=self._cancel)
        self.executor = ThreadPoolExecutor(max_workers=config.concurrency,
                                           thread_name_prefix="cull")
        self._checked = False
        self._use_state_filter = True

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.hub.close()

    def worst_case_call_s(self) -> float:
        return self.policy.worst_case_call_s(self.config.hub.read_timeout)

    # -- reload -------------------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the configuration; a bad one is refused and the old one stays."""
        try:
            new = self._load()
        except ConfigError as exc:
            log.error("reload-refused", error=str(exc), detail="the old configuration stays")
            return
        changed = self._log_changes(self.config, new)
        self.close()
        self._apply(new)
        log.info("reloaded", changes=changed)

    @staticmethod
    def _log_changes(old: Config, new: Config) -> int:
        """Log each option, the token and the rules that differ; return how many did."""
        old_values, new_values = old.describe(), new.describe()
        changed = sorted(key for key in set(old_values) | set(new_values)
                         if old_values.get(key) != new_values.get(key))
        for key in changed:
            log.info("reload-changed", option=key, old=old_values.get(key, "-"),
                     new=new_values.get(key, "-"))
        count = len(changed)
        if new.hub.token != old.hub.token:
            count += 1
            log.info("reload-changed", option="credential", detail="replaced")
        if old.culling.rules != new.culling.rules:
            log.info("reload-changed", option="rules",
                     old=",".join(rule.name for rule in old.culling.rules) or "-",
                     new=",".join(rule.name for rule in new.culling.rules) or "-")
        return count

    # -- preflight ----------------------------------------------------------------------------

    def preflight(self) -> None:
        """Ask the hub for its version and the token's own scopes; refuse missing scopes.

        Raises ConfigError when the hub refuses the token, or reports its scopes and a needed
        one is absent; HubError when the hub cannot be asked (tried again at the next pass).
        """
        version = self.hub.version()
        self._use_state_filter = version_tuple(version) >= STATE_FILTER_SINCE
        try:
            owner = self.hub.whoami()
        except HubAuthError as exc:  # the token itself is refused: restarting cannot help
            raise ConfigError("the hub refused the API token: %s" % exc) from None
        found = scopes.verdict(owner, self.config.culling,
                               has_scopes=version_tuple(version) >= SCOPES_SINCE)
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
            log.info("preflight", hub_version=version, scopes="ok")
        self._checked = True

    # -- a pass -------------------------------------------------------------------------------

    def run_pass(self, heartbeat: Callable[[], None], should_stop: Callable[[], bool]
                 ) -> PassStats:
        """Preflight if not done yet, then one pass; a hub that cannot be asked ends it."""
        if not self._checked:
            try:
                self.preflight()
            except HubError as exc:
                stats = PassStats(listing_error=str(exc))
                stats.count_error(exc.status)
                self._record(stats)
                return stats
        runtime = Runtime(
            pool=self.executor, concurrency=self.config.concurrency,
            dry_run=self.config.dry_run, use_state_filter=self._use_state_filter,
            heartbeat=heartbeat, should_stop=should_stop, tick_s=self._tick_s,
            stall_s=self.worst_case_call_s())
        self.last_stats = run_pass(self.hub, self.config.culling, self._clock(), runtime,
                                   self._warned)
        self._record(self.last_stats)
        return self.last_stats

    def _record(self, stats: PassStats) -> None:
        if self._metrics is None:
            return
        try:
            self._metrics.record(stats)
        except OSError as exc:
            log.error("metrics-failed", error=str(exc))
