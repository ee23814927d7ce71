"""The composition root: parse, load, wire, run, and turn the outcome into an exit code.

Only this module reads ``os.environ`` and ``sys.argv`` and installs signal handlers; nothing
imports it but ``__main__``. The exit codes are defined in ``errors``.
"""

import os
import signal
import sys
import threading
from typing import Any, Dict, Mapping, Optional, Sequence

from idle_culler_daemon import __version__
from idle_culler_daemon.config import Config, load_config
from idle_culler_daemon.daemon import Signals, run_forever
from idle_culler_daemon.errors import EXIT_BUG, EXIT_CONFIG, EXIT_OK, EXIT_USAGE, ConfigError
from idle_culler_daemon.log import configure_logging, get_logger
from idle_culler_daemon.metrics import Metrics
from idle_culler_daemon.notify import Notifier
from idle_culler_daemon.options import PROG, generate_config, parse_command_line
from idle_culler_daemon.report import plan_table
from idle_culler_daemon.service import Culler
from idle_culler_daemon.sources import read_text

log = get_logger(__name__)


def _install_signal_handlers(signals: Signals) -> None:
    def on_stop(signum: int, frame: Any) -> None:
        signals.request_stop()  # nothing else here: no logging, no I/O

    def on_reload(signum: int, frame: Any) -> None:
        signals.request_reload()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_reload)


def _start_metrics(config: Config) -> Optional[Metrics]:
    """The metrics endpoint and file, when configured; ConfigError when they cannot work."""
    if not (config.metrics_port or config.metrics_file):
        return None
    metrics = Metrics(config.metrics_file)
    if config.metrics_file:
        try:
            metrics.write_file(config.metrics_file)  # fails now, not after the first pass
        except OSError as exc:
            raise ConfigError("--metrics-file: cannot write %s: %s"
                              % (config.metrics_file, exc.strerror or exc)) from None
    if config.metrics_port:
        metrics.serve(config.metrics_port, config.metrics_address)
    log.info("metrics", port=config.metrics_port or "-", address=config.metrics_address,
             file=config.metrics_file or "-")
    return metrics


def _warn_about_watchdog(notifier: Notifier, worst_case_s: float) -> None:
    if notifier.watchdog_s and worst_case_s > notifier.watchdog_s / 2:
        log.warning("watchdog-too-short", worst_case_call_s=round(worst_case_s, 1),
                    watchdog_half_s=round(notifier.watchdog_s / 2, 1),
                    detail="raise WatchdogSec= or lower --request-timeout, or a slow hub can "
                           "get the culler restarted")


def _run(config: Config, values: Mapping[str, Any], env: Mapping[str, str]) -> int:
    """Wire the configured culler to the loop, run it, and print the dry-run plan."""
    configure_logging(config.log_level, config.log_format, env, secrets=[config.hub.token])
    for warning in config.warnings:
        log.warning("config-warning", detail=warning)
    notifier = Notifier.from_environ(env, os.getpid())
    signals = Signals()
    if threading.current_thread() is threading.main_thread():
        _install_signal_handlers(signals)
    log.info("start", version=__version__, url=config.hub.api_url,
             timeout=config.culling.timeout, cull_every=config.cull_every,
             concurrency=config.concurrency, dry_run=config.dry_run, once=config.once)
    try:
        metrics = _start_metrics(config)
    except ConfigError as exc:
        log.error("config-error", error=str(exc))
        return EXIT_CONFIG
    culler = Culler(config, lambda: load_config(values, env, read_text), metrics=metrics,
                    cancel=signals.stop, tick_s=notifier.tick_s)
    _warn_about_watchdog(notifier, culler.worst_case_call_s())
    try:
        code = run_forever(culler, notifier, signals, once=config.once)
    except Exception:
        log.exception("crash", detail="an unexpected error; this is a bug")
        code = EXIT_BUG
    finally:
        culler.close()
    if config.once and config.dry_run and culler.last_stats is not None:
        print(plan_table(culler.last_stats.plan))
        sys.stdout.flush()
    return code


def main(argv: Optional[Sequence[str]] = None, env: Optional[Mapping[str, str]] = None) -> int:
    """Run the culler; return the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if env is None else env)
    try:
        values: Dict[str, Any] = parse_command_line(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if values.get("version"):
        print("%s %s" % (PROG, __version__))
        return EXIT_OK
    if values.get("generate_config"):
        print(generate_config())
        return EXIT_OK
    try:
        config = load_config(values, env, read_text)
    except ConfigError as exc:
        print("%s: configuration error: %s" % (PROG, exc), file=sys.stderr)
        return EXIT_CONFIG
    return _run(config, values, env)
