"""The registry of log events: every event name the package logs, with its levels and fields.

A log line is ``log.<level>("event-name", field=value, ...)``; the event names are listed here
once, with the levels they are logged at and what they carry, and docs/reference.md is made
from this list. Names built at run time (``action + "-failed"``) are listed too, each spelt
out: ``COMPUTED`` says which actions and suffixes make them. tests/unit/test_events.py checks
that every logging call of the package uses a name of this list.
"""

from typing import Dict, NamedTuple, Tuple


class Event(NamedTuple):
    name: str
    levels: str  # the levels it is logged at, most usual first
    meaning: str  # when it is logged and its fields


#: The kinds of request a pass sends, and what the names built from them end with.
COMPUTED: Tuple[Tuple[str, ...], Tuple[str, ...]] = (("stop", "delete"),
                                                    ("-failed", "-refused", "-unreachable"))

EVENTS: Dict[str, Event] = {event.name: event for event in (
    Event("start", "INFO",
          "start-up: `version`, `url`, `timeout`, `cull_every`, `concurrency`, `dry_run`, "
          "`once`, `config_file`"),
    Event("config-warning", "WARNING",
          "an accepted but odd value, or an unknown `JUPYTERHUB_IDLE_CULLER_*` variable"),
    Event("rule-chosen-by-users", "WARNING",
          "at start and on reload, one per rule that matches values users choose "
          "(`profiles`, `user_options`) and culls less than the global settings: `rule`, "
          "`relaxes`, `detail`"),
    Event("watchdog-too-short", "WARNING",
          "one call can outlast half the watchdog interval"),
    Event("metrics", "INFO",
          "the metrics endpoint or file is set up: `port`, `address`, `file`, `prometheus`"),
    Event("metrics-port-ignored", "INFO",
          "`--once` opens no port: `--metrics-port` is ignored and the textfile is written "
          "(`port`, `detail`)"),
    Event("hub-unavailable-at-start", "WARNING",
          "the first preflight found no hub: READY=1 goes out with a STATUS= saying it waits, "
          "and the preflight is tried again before each pass (`error`, `detail`)"),
    Event("reference-also-installed", "WARNING",
          "at start: the reference's distribution (jupyterhub-idle-culler) shares this "
          "environment; uninstalling it would remove this culler's module and command "
          "(`detail` gives the repair command)"),
    Event("kernel-check-token-kept", "DEBUG",
          "a kernel check's token, owned by the server's user, could not be revoked (it "
          "expires on its own): `user`, `error`, `detail`"),
    Event("metrics-unavailable", "WARNING",
          "`--metrics-port` without prometheus-client: `/healthz` only"),
    Event("hub-attempt-failed", "WARNING",
          "one attempt of a request to the hub failed: `request`, `hub`, `attempt`, "
          "`attempts`, `error`, `retry_in_s`, `detail`"),
    Event("preflight", "INFO",
          "the preflight passed: `hub_version`, `scopes`"),
    Event("preflight-scope", "WARNING",
          "an advised scope is missing, or, in a dry run, a scope only acting needs"),
    Event("config-error", "ERROR",
          "a configuration problem found after logging was set up (missing scope, refused "
          "token, a `--url` that is not the API, metrics); the process exits 78"),
    Event("keep", "DEBUG, INFO, WARNING",
          "a server is kept: `user`, `server`, `reason`, `idle_s`, `age_s`, `rule`; at "
          "WARNING for `reason=no-timestamps`, once per server; at INFO when the server "
          "itself kept it (`kernel-busy`, `server-active`)"),
    Event("groups-unknown", "WARNING",
          "once for the life of the process: a group rule met a user model without "
          "`groups`; `user`, `rule`, `scope` (`read:users:groups`), `detail`"),
    Event("kernel-check-failed", "WARNING, DEBUG",
          "a server could not be asked and is judged by the hub's data: `user`, `server`, "
          "`reason`, `error` (and `hint` for `refused`); WARNING once per reason per pass"),
    Event("user-options-missing", "WARNING",
          "once: a rule needs `user_options` that the server models do not carry: `scope`, "
          "`detail`"),
    Event("stops-held-back", "WARNING",
          "`--max-stops-per-pass` held stops back: `held`, `planned`, `limit`"),
    Event("deletions-held-back", "WARNING",
          "`--max-stops-per-pass` held user deletions back (counted apart from the stops): "
          "`held`, `planned`, `limit`, `detail`"),
    Event("mass-cull-guard", "ERROR",
          "`--max-stop-fraction` stopped the pass: `share`, `fraction`, `limit`, `detail`"),
    Event("clock-offset", "INFO, WARNING",
          "the hub's clock minus the culler's, from the `Date` of a pass's first page: "
          "WARNING from 30 s (again only after a move of 30 s), INFO with the figure when the "
          "clocks agree to within 30 s (at the first pass, and again after a WARNING): "
          "`offset_s`, `detail`"),
    Event("clock-unknown", "WARNING",
          "once: the hub's answer carried no usable `Date`; idle times are measured on the "
          "culler's own clock: `reason`, `detail`"),
    Event("skip-user", "WARNING",
          "a user model that cannot be understood safely: the user is skipped for this pass"),
    Event("stop", "INFO",
          "a stop was answered: `user`, `server`, `reason`, `idle_s`, `age_s`, `rule`, "
          "`result` (`stopped`, `pending`, `gone`, `unreachable`)"),
    Event("stop-unreachable", "WARNING",
          "at the end of a pass, the servers a filtered token could not reach that were not "
          "named before: `count`, `names` (`user/server`, `-` for the default server; 20 at "
          "most, then `and N more`), `hint`"),
    Event("would-stop", "INFO",
          "the same under `--dry-run`, without `result`"),
    Event("stop-failed", "ERROR",
          "a stop failed: `user`, `server`, `reason`, `error`"),
    Event("stop-refused", "ERROR",
          "the first refused stop of the pass: `user`, `server`, `status`, `hint`, `error`"),
    Event("delete", "INFO",
          "a user was deleted: `user`, `reason`, `idle_s`, `age_s`, `rule`, `result` "
          "(`deleted`, `gone`, `unreachable`)"),
    Event("delete-unreachable", "WARNING",
          "the same as `stop-unreachable`, for users a filtered `delete:users` scope does "
          "not cover"),
    Event("would-delete", "INFO",
          "the same under `--dry-run`, without `result`"),
    Event("delete-failed", "ERROR",
          "a deletion failed: `user`, `reason`, `error`"),
    Event("delete-refused", "ERROR",
          "the first refused deletion of the pass: `user`, `status`, `hint`, `error`"),
    Event("keep-user", "INFO",
          "a user judged idle is kept because a server is still stopping, or was kept on "
          "its own word"),
    Event("pass-aborted", "ERROR",
          "a listing or the preflight failed: the pass ends, nothing is sent"),
    Event("pass-refused", "ERROR",
          "the hub refused a request of the pass"),
    Event("pass-done", "INFO",
          "the end of every pass: its figures"),
    Event("pass-overran", "WARNING",
          "a pass took longer than the interval: `overrun_s`, `interval_s`"),
    Event("metrics-failed", "ERROR",
          "the metrics file could not be written after a pass"),
    Event("reload-changed", "INFO",
          "one changed option on reload: `option`, `old`, `new`"),
    Event("reload-overridden", "INFO",
          "a reload read options from the config file that the command line or the "
          "environment overrides: `options`, `detail`"),
    Event("reload-refused", "ERROR",
          "a reload was refused (invalid configuration, preflight refused, metrics file "
          "unwritable, or found before the next pass after an unverified reload): `error`; "
          "the old configuration stays or is restored"),
    Event("reload-unverified", "WARNING",
          "the hub could not be asked during a reload: `error`; the preflight runs before "
          "the next pass"),
    Event("reload-needs-restart", "WARNING",
          "a reload changed an option a running daemon keeps: `option`, `running`, `new`"),
    Event("reloaded", "INFO",
          "a reload was applied: `changes`, `verified`"),
    Event("stopped", "INFO",
          "the culler is about to exit after a stop signal or `--once`"),
    Event("crash", "ERROR",
          "an unexpected error (a bug), with its traceback; the process exits 1"),
    Event("notify-disabled", "DEBUG",
          "`NOTIFY_SOCKET` is set but unusable: `error`, `detail`"),
    Event("notify-failed", "DEBUG",
          "a message to systemd could not be sent (logged once): `error`, `detail`"),
    # notifications (--warn-before, --notify-url): docs/notifications.md
    Event("server-stop-soon", "INFO",
          "a server will be stopped within `--warn-before`, once per idle stretch: `user`, "
          "`server`, `reason`, `idle_s`, `rule`, `at`"),
    Event("user-delete-soon", "INFO",
          "a user will be deleted within `--warn-before` (`--cull-users`), once per idle "
          "stretch: `user`, `reason`, `idle_s`, `rule`, `at`"),
    Event("would-warn", "INFO",
          "a dry run: the warning it would send (`notice`, then its fields)"),
    Event("server-stopped", "INFO",
          "with `--notify-url`: the hub took a stop, notice sent: `user`, `server`, `reason`, "
          "`idle_s`, `rule`, `result`"),
    Event("user-deleted", "INFO",
          "with `--notify-url`: the hub deleted a user, notice sent: `user`, `reason`, "
          "`idle_s`, `rule`"),
    Event("guard-tripped", "INFO",
          "with `--notify-url`: the mass-cull guard held a pass back, notice sent: "
          "`planned`, `running`, `limit`"),
    Event("webhook-failed", "WARNING, ERROR",
          "notifications not delivered since the last pass (one line per pass at most): "
          "`failed`, `dropped`, `error`; ERROR with a traceback for a bug in the sender"),
)}
