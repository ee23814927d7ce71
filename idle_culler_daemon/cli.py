"""The composition root: parse, load, wire, run, and turn the outcome into an exit code.

Only this module reads ``os.environ`` and ``sys.argv`` and installs signal handlers; nothing
imports it but ``__main__``. The exit codes are defined in ``errors``.
"""

import os
import signal
import sys
import threading
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from idle_culler_daemon import __version__
from idle_culler_daemon.config import Config, load_config, show_config
from idle_culler_daemon.daemon import Health, Signals, run_forever
from idle_culler_daemon.errors import (
    EXIT_BUG,
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_TEMPFAIL,
    EXIT_USAGE,
    ConfigError,
    HubError,
)
from idle_culler_daemon.installed import reference_warning, version_line
from idle_culler_daemon.log import configure_logging, get_logger
from idle_culler_daemon.metrics import Endpoint, Metrics
from idle_culler_daemon.notify import Notifier
from idle_culler_daemon.options import PROG, generate_config, parse_command_line
from idle_culler_daemon.report import plan_json, plan_table
from idle_culler_daemon.service import Culler, warn_about_rules
from idle_culler_daemon.sources import read_text

log = get_logger(__name__)


def _install_signal_handlers(signals: Signals) -> None:
    """Handlers that only record the signal (no lock, no I/O, no logging: a handler runs
    between two bytecodes of the main thread, wherever it is), and the wakeup fd through
    which the interpreter wakes the loop's wait for each signal."""
    def on_stop(signum: int, frame: Any) -> None:
        signals.record(Signals.STOP)

    def on_reload(signum: int, frame: Any) -> None:
        signals.record(Signals.RELOAD)

    signal.set_wakeup_fd(signals.wakeup_fd, warn_on_full_buffer=False)
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_reload)


def _release_signals(signals: Signals) -> None:
    """No wakeup fd before the pipe is closed: one left on a closed descriptor would write
    into whatever reuses its number. The handlers stay: a late signal is only recorded."""
    if threading.current_thread() is threading.main_thread():
        signal.set_wakeup_fd(-1)
    signals.close()


def _start_metrics(config: Config) -> Optional[Metrics]:
    """The metrics, when configured; ConfigError when they cannot work.

    ``--metrics-file`` needs prometheus-client; ``--metrics-port`` without it still serves
    ``/healthz`` (its ``/metrics`` answers 503 with the install command), with a warning.
    """
    if not ((config.metrics_port and not config.once) or config.metrics_file):
        return None
    try:
        metrics = Metrics(config.metrics_file)
    except ConfigError as exc:
        if config.metrics_file:
            raise
        log.warning("metrics-unavailable", error=str(exc),
                    detail="/healthz is served, /metrics answers 503")
        return None
    if config.metrics_file:
        try:
            metrics.write_file(config.metrics_file)  # fails now, not after the first pass
        except OSError as exc:
            raise ConfigError("--metrics-file: cannot write %s: %s"
                              % (config.metrics_file, exc.strerror or exc)) from None
    return metrics


def _start_endpoint(config: Config, metrics: Optional[Metrics], health: Health
                    ) -> Optional[Endpoint]:
    """``/metrics`` and ``/healthz`` on ``--metrics-port``; ConfigError when it cannot bind."""
    endpoint = None
    if config.metrics_port and config.once:  # a pass writes a textfile; the port is the daemon's
        log.info("metrics-port-ignored", port=config.metrics_port, detail="--once opens no "
                 "port (a running daemon may hold it); --metrics-file writes the metrics")
    elif config.metrics_port:
        endpoint = Endpoint(config.metrics_address, config.metrics_port, metrics, health.check)
    if endpoint is not None or metrics is not None:
        log.info("metrics", port=endpoint.port if endpoint is not None else "-",
                 address=config.metrics_address, file=config.metrics_file or "-",
                 prometheus=metrics is not None)
    return endpoint


def _logging_hook(env: Mapping[str, str]) -> Callable[[Config, Tuple[str, ...]], None]:
    """Applies a configuration's log level and format, redacting its token (and others)."""
    def apply(config: Config, also_redact: Tuple[str, ...] = ()) -> None:
        configure_logging(config.log_level, config.log_format, env,
                          secrets=[*config.secrets, *also_redact])
    return apply


def _warn_about_watchdog(notifier: Notifier, worst_case_s: float) -> None:
    if notifier.watchdog_s and worst_case_s > notifier.watchdog_s / 2:
        log.warning("watchdog-too-short", worst_case_call_s=round(worst_case_s, 1),
                    watchdog_half_s=round(notifier.watchdog_s / 2, 1),
                    detail="raise WatchdogSec= or lower --request-timeout, or a slow hub can "
                           "get the culler restarted")


def _run(config: Config, values: Mapping[str, Any], env: Mapping[str, str]) -> int:
    """Wire the configured culler to the loop, run it, and print the dry-run plan."""
    apply_logging = _logging_hook(env)
    apply_logging(config, ())
    for warning in config.warnings:
        log.warning("config-warning", detail=warning)
    warn_about_rules(config)
    for warning in filter(None, [reference_warning()]):
        log.warning("reference-also-installed", detail=warning)
    notifier = Notifier.from_environ(env, os.getpid())
    signals = Signals()
    if threading.current_thread() is threading.main_thread():
        _install_signal_handlers(signals)
    log.info("start", version=__version__, url=config.hub.api_url,
             timeout=config.culling.timeout, cull_every=config.cull_every,
             concurrency=config.concurrency, dry_run=config.dry_run, once=config.once,
             config_file=config.config_file or "-")
    try:
        metrics = _start_metrics(config)
    except ConfigError as exc:
        log.error("config-error", error=str(exc))
        return EXIT_CONFIG
    culler = Culler(config, lambda: load_config(values, env, read_text), metrics=metrics,
                    stop=signals.stop, tick_s=notifier.tick_s, logging=apply_logging)
    try:
        return _serve(culler, notifier, signals, metrics)
    finally:
        culler.close()
        _release_signals(signals)


def _serve(culler: Culler, notifier: Notifier, signals: Signals, metrics: Optional[Metrics]
           ) -> int:
    """Open the endpoint, run the loop, close the endpoint; print the dry-run plan."""
    config = culler.config
    health = Health(lambda: notifier.watchdog_s or (culler.worst_case_call_s()
                                                    + 2 * notifier.tick_s))
    try:
        endpoint = _start_endpoint(config, metrics, health)
    except ConfigError as exc:
        log.error("config-error", error=str(exc))
        return EXIT_CONFIG
    _warn_about_watchdog(notifier, culler.worst_case_call_s())
    try:
        code = run_forever(culler, notifier, signals, once=config.once, health=health)
    except Exception:
        log.exception("crash", detail="an unexpected error; this is a bug")
        code = EXIT_BUG
    finally:
        if endpoint is not None:
            endpoint.close()
    if config.once and config.dry_run and culler.last_stats is not None:
        stats = culler.last_stats
        print(plan_json(stats) if config.output == "json"
              else plan_table(stats.plan, stats.warnings))
        sys.stdout.flush()
    return code


def _check_config(config: Config, env: Mapping[str, str], preflight: bool) -> int:
    """``--check-config``: the configuration was read and validated as a start reads it (a
    ConfigError has already ended the run with 78); what a start would still refuse is
    checked here. With ``--preflight`` the hub is asked as before the first pass: 78 when it
    refuses the token or a scope is missing, 75 when it cannot be asked."""
    _logging_hook(env)(config, ())
    for warning in config.warnings:
        log.warning("config-warning", detail=warning)
    warn_about_rules(config)
    if config.metrics_file:
        Metrics(config.metrics_file)  # ConfigError without prometheus-client, as at start
    if preflight:
        culler = Culler(config, lambda: config)
        try:
            culler.preflight()
        except HubError as exc:
            print("%s: the hub could not be asked: %s" % (PROG, exc), file=sys.stderr)
            return EXIT_TEMPFAIL
        finally:
            culler.close()
    print("%s: the configuration is good (config file: %s%s)"
          % (PROG, config.config_file or "none", "; preflight passed" if preflight else ""))
    return EXIT_OK


def main(argv: Optional[Sequence[str]] = None, env: Optional[Mapping[str, str]] = None) -> int:
    """Run the culler; return the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    env = dict(os.environ if env is None else env)
    try:
        values: Dict[str, Any] = parse_command_line(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if values.get("preflight") and not values.get("check_config"):
        print("%s: error: --preflight goes with --check-config" % PROG, file=sys.stderr)
        return EXIT_USAGE
    if values.get("version"):
        print(version_line(__version__, __file__))
        return EXIT_OK
    if values.get("generate_config"):
        print(generate_config())
        return EXIT_OK
    try:
        config = load_config(values, env, read_text,
                             token_required=not values.get("show_config"))
        if values.get("show_config"):
            print(show_config(config), end="")
            return EXIT_OK
        if values.get("check_config"):
            return _check_config(config, env, bool(values.get("preflight")))
    except ConfigError as exc:
        print("%s: configuration error: %s" % (PROG, exc), file=sys.stderr)
        return EXIT_CONFIG
    return _run(config, values, env)
