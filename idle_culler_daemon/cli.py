"""The composition root: command line and environment in, a running culler, an exit code out.

Only this module reads ``os.environ`` and ``sys.argv`` and installs signal handlers. Exit codes:
0 done, 1 unexpected error (a bug), 2 usage, 75 (``--once``) hub unreachable or failures, 78
configuration (bad option, missing token, missing scopes).
"""

import logging
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from idle_culler_daemon import __version__
from idle_culler_daemon.config import Config, generate_config, load_config, parse_command_line
from idle_culler_daemon.cull import PassStats, Row, run_pass, seconds, status_class
from idle_culler_daemon.daemon import EXIT_CONFIG, Signals, run_forever
from idle_culler_daemon.errors import ConfigError, HubAuthError, HubError
from idle_culler_daemon.hub import HubClient
from idle_culler_daemon.log import configure_logging
from idle_culler_daemon.metrics import Metrics
from idle_culler_daemon.notify import Notifier
from idle_culler_daemon.policy import advised_scopes, missing_scopes, required_scopes

log = logging.getLogger(__name__)

EXIT_BUG = 1
PROG = "jupyterhub-idle-culler"


def read_text(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _version_tuple(version: str) -> tuple:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


class Culler:
    """One configured culler: hub client, worker pool, preflight state; rebuilt on reload."""

    def __init__(self, config: Config, load: Callable[[], Config],
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 metrics: Optional[Metrics] = None,
                 cancel: Optional[threading.Event] = None) -> None:
        self._load = load
        self._cancel = cancel
        self._metrics = metrics
        self._clock = clock
        self._warned: set = set()
        self.last_stats: Optional[PassStats] = None
        self._apply(config)

    def _apply(self, config: Config) -> None:
        self.config = config
        self.interval_s = float(config.cull_every)
        self.hub = HubClient(config.hub, cancel=self._cancel)
        self.executor = ThreadPoolExecutor(max_workers=config.concurrency,
                                           thread_name_prefix="cull")
        self._checked = False
        self._use_state_filter = True

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.hub.close()

    def reload(self) -> None:
        """Re-read the configuration; a bad one is refused and the old one stays."""
        try:
            new = self._load()
        except ConfigError as exc:
            log.error("reload-refused error=%s detail=%s", exc, "the old configuration stays")
            return
        old_values, new_values = self.config.describe(), new.describe()
        changed = sorted(key for key in set(old_values) | set(new_values)
                         if old_values.get(key) != new_values.get(key))
        for key in changed:
            log.info("reload-changed option=%s old=%s new=%s", key, old_values.get(key, "-"),
                     new_values.get(key, "-"))
        if new.hub.token != self.config.hub.token:
            changed.append("api-token")
            log.info("reload-changed option=credential detail=%s", "replaced")
        old_rules, new_rules = self.config.culling.rules, new.culling.rules
        if old_rules != new_rules:
            log.info("reload-changed option=rules old=%s new=%s",
                     ",".join(rule.name for rule in old_rules) or "-",
                     ",".join(rule.name for rule in new_rules) or "-")
        self.close()
        self._apply(new)
        log.info("reloaded changes=%s", len(changed))

    def preflight(self) -> None:
        """Ask the hub for its version and the token's own scopes; refuse missing scopes.

        Raises ConfigError when the hub reports the token's scopes and a needed one is absent;
        HubError when the hub cannot be asked (the caller tries again at the next pass).
        """
        version = self.hub.version()
        self._use_state_filter = _version_tuple(version) >= (1, 3)
        try:
            owner = self.hub.whoami()
        except HubAuthError as exc:  # the token itself is refused: restarting cannot help
            raise ConfigError("the hub refused the API token: %s" % exc) from None
        granted = owner.get("scopes")
        needed = required_scopes(self.config.culling)
        if isinstance(granted, list):
            missing = missing_scopes(needed, granted)
            if missing:
                raise ConfigError("the API token lacks the scope%s %s (the hub granted: %s)"
                                  % ("s" if len(missing) > 1 else "", ", ".join(missing),
                                     ", ".join(sorted(granted)) or "none"))
            for scope in missing_scopes(advised_scopes(self.config.culling), granted):
                log.warning("preflight-scope missing=%s detail=%s", scope, "without it the hub "
                            "hides 'created', so users who were never active are not deleted")
            log.info("preflight hub_version=%s scopes=ok", version)
        else:
            log.info("preflight hub_version=%s scopes=%s", version,
                     "not-reported (missing scopes show up as 403 answers)")
        self._checked = True

    def run_pass(self, heartbeat: Callable[[], None], should_stop: Callable[[], bool]
                 ) -> PassStats:
        if not self._checked:
            try:
                self.preflight()
            except HubError as exc:
                stats = PassStats(listing_error=str(exc))
                stats.errors[status_class(exc.status)] += 1
                self._record(stats)
                return stats
        now = self._clock()
        self.last_stats = run_pass(self.hub, self.config.culling, now, self.executor,
                        self.config.concurrency, dry_run=self.config.dry_run,
                        use_state_filter=self._use_state_filter, heartbeat=heartbeat,
                        should_stop=should_stop, warned=self._warned,
                        stall_s=self.config.hub.worst_case_call_s())
        self._record(self.last_stats)
        return self.last_stats

    def _record(self, stats: PassStats) -> None:
        if self._metrics is None:
            return
        try:
            self._metrics.record(stats)
        except OSError as exc:
            log.error("metrics-failed error=%s", exc)


def format_duration(text: str) -> str:
    if text == "-":
        return "-"
    total = int(text)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return "%dd%02dh%02dm" % (days, hours, minutes)
    if hours:
        return "%dh%02dm" % (hours, minutes)
    return "%dm%02ds" % (minutes, secs)


def summary_table(rows: Sequence[Row]) -> str:
    """The ``--once --dry-run`` table: one row per server to stop and user to delete."""
    header = ("ACTION", "USER", "SERVER", "REASON", "IDLE FOR", "AGE", "RULE")
    lines: List[tuple] = [header]
    for row in sorted(rows, key=lambda r: (r.user, r.action != "stop", r.server)):
        lines.append(("would-" + row.action, row.user, row.server or "-", row.verdict.reason,
                      format_duration(seconds(row.verdict.idle_for)),
                      format_duration(seconds(row.verdict.age)), row.verdict.rule))
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
            for line in lines]
    stops = sum(1 for row in rows if row.action == "stop")
    text.append("%d server(s) would be stopped, %d user(s) deleted; nothing was changed."
                % (stops, len(rows) - stops))
    return "\n".join(text)


def _install_signal_handlers(signals: Signals) -> None:
    def on_stop(signum: int, frame: Any) -> None:
        signals.request_stop()  # nothing else here: no logging, no I/O

    def on_reload(signum: int, frame: Any) -> None:
        signals.request_reload()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_reload)


def main(argv: Optional[Sequence[str]] = None, env: Optional[Mapping[str, str]] = None) -> int:
    """Run the culler; return the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if env is None else env)
    try:
        values: Dict[str, Any] = parse_command_line(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 2
    if values.get("version"):
        print("%s %s" % (PROG, __version__))
        return 0
    if values.get("generate_config"):
        print(generate_config())
        return 0

    def load() -> Config:
        return load_config(values, env, read_text)

    try:
        config = load()
    except ConfigError as exc:
        print("%s: configuration error: %s" % (PROG, exc), file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.log_level, config.log_format, env, secrets=[config.hub.token])
    for warning in config.warnings:
        log.warning("config-warning detail=%s", warning)
    notifier = Notifier.from_environ(env, os.getpid())
    worst = config.hub.worst_case_call_s()
    if notifier.watchdog_s and worst > notifier.watchdog_s / 2:
        log.warning("watchdog-too-short worst_case_call_s=%.1f watchdog_half_s=%.1f detail=%s",
                    worst, notifier.watchdog_s / 2, "raise WatchdogSec= or lower "
                    "--request-timeout, or a slow hub can get the culler restarted")
    signals = Signals()
    if threading.current_thread() is threading.main_thread():
        _install_signal_handlers(signals)
    log.info("start version=%s url=%s timeout=%s cull_every=%s concurrency=%s dry_run=%s "
             "once=%s", __version__, config.hub.api_url, config.culling.timeout,
             config.cull_every, config.concurrency, config.dry_run, config.once)
    metrics = None
    if config.metrics_port or config.metrics_file:
        try:
            metrics = Metrics(config.metrics_file)
            if config.metrics_file:
                metrics.write_file(config.metrics_file)  # fails now, not after the first pass
            if config.metrics_port:
                metrics.serve(config.metrics_port, config.metrics_address)
        except OSError as exc:
            log.error("config-error error=%s", "--metrics-file: cannot write %s: %s"
                      % (config.metrics_file, exc.strerror or exc))
            return EXIT_CONFIG
        except ConfigError as exc:
            log.error("config-error error=%s", exc)
            return EXIT_CONFIG
        log.info("metrics port=%s address=%s file=%s", config.metrics_port or "-",
                 config.metrics_address, config.metrics_file or "-")
    culler = Culler(config, load, metrics=metrics, cancel=signals.stop)
    try:
        code = run_forever(culler, notifier, signals, once=config.once)
    except Exception:
        log.exception("crash detail=%s", "an unexpected error; this is a bug")
        code = EXIT_BUG
    finally:
        culler.close()
    if config.once and config.dry_run and culler.last_stats is not None:
        print(summary_table(culler.last_stats.rows))
        sys.stdout.flush()
    return code
