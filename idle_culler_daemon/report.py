"""What a pass tells people: the summary log line, the STATUS= line and the dry-run plan.

Formatting only: the figures come from ``stats.PassStats``; the caller decides where each goes
(the log, systemd, stdout). The plan is a table for people, or JSON lines for programs.
"""

from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence, Tuple

from idle_culler_daemon.forewarn import Notice, iso
from idle_culler_daemon.log import display, get_logger, json_line
from idle_culler_daemon.stats import Outcome, PassStats, PlanEntry, outcome, whole_seconds

log = get_logger(__name__)


def status_line(stats: PassStats, next_at: Optional[datetime]) -> str:
    """The one-line summary used for STATUS= (kept short and ASCII by the notifier), by the
    pass's :func:`stats.outcome`."""
    result = outcome(stats)
    if result is Outcome.FAILED:
        head = ("hub unreachable: %s" % stats.listing_error if stats.listing_error
                else "refused by the hub: %s" % stats.auth_error)
    elif result is Outcome.GUARD_TRIPPED:
        head = str(stats.guard_tripped)
    elif result is Outcome.PARTIAL and stats.auth_error:
        head = "refused by the hub: %s" % stats.auth_error
    else:
        head = _counts(stats)
        if result is Outcome.INTERRUPTED:
            head = "interrupted: " + head
    if next_at is not None:
        head += "; next pass %s" % next_at.strftime("%H:%M:%SZ")
    return head


def _counts(stats: PassStats) -> str:
    if stats.dry_run:
        return ("users %d, dry run: would stop %d, would delete %d in %.1fs"
                % (stats.users_seen, stats.would("stop"), stats.would("delete"),
                   stats.duration_s))
    head = ("users %d, stopped %d, pending %d, failed %d, deleted %d in %.1fs"
            % (stats.users_seen, stats.stopped, stats.pending,
               stats.failed + stats.delete_failed, stats.deleted, stats.duration_s))
    if stats.first_failure:
        head += " (first failure: user %s)" % stats.first_failure
    return head


def log_pass(stats: PassStats, next_at: Optional[datetime]) -> None:
    """The pass's summary line, preceded by an ERROR when the listing failed or was refused.

    ``next_at`` is None for ``--once``, which has no next pass to promise.
    """
    if stats.listing_error:
        log.error("pass-aborted", reason="hub-error", error=stats.listing_error,
                  detail="nothing was stopped; " + ("trying again at the next pass"
                                                    if next_at else "no other pass (--once)"))
    if stats.auth_error:
        log.error("pass-refused", reason="auth", error=stats.auth_error,
                  hint="check the scopes of the token's role")
    dry_run = {"dry_run": True, "would_stop": stats.would("stop"),
               "would_delete": stats.would("delete")} if stats.dry_run else {}
    log.info("pass-done", users=stats.users_seen, skipped=stats.users_skipped,
             stopped=stats.stopped, pending=stats.pending, unreachable=stats.unreachable,
             failed=stats.failed, deleted=stats.deleted, delete_failed=stats.delete_failed,
             **dry_run, took_s=round(stats.duration_s, 2),
             next=next_at.strftime("%Y-%m-%dT%H:%M:%SZ") if next_at else "-",
             outcome=outcome(stats).value)


def format_duration(total: Optional[int]) -> str:
    """``7260`` (whole seconds) -> ``2h01m``; None (unknown) is ``-``."""
    if total is None:
        return "-"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return "%dd%02dh%02dm" % (days, hours, minutes)
    if hours:
        return "%dh%02dm" % (hours, minutes)
    return "%dm%02ds" % (minutes, secs)


def _in_order(plan: Sequence[PlanEntry]) -> List[PlanEntry]:
    return sorted(plan, key=lambda e: (e.user, e.action != "stop", e.server))


def plan_table(plan: Sequence[PlanEntry], warnings: Sequence[Notice] = ()) -> str:
    """The ``--once --dry-run`` table: one row per server to stop and user to delete.

    What the mass-cull guard holds back is listed too, as ``held-back``. Names are shown as the
    log shows them (:func:`log.display`): a name with spaces, quotes or control characters is
    quoted and escaped, so it can neither forge a row nor drive the terminal. The warnings it
    would send (``--warn-before``) follow in a table of their own.
    """
    header = ("ACTION", "USER", "SERVER", "REASON", "IDLE FOR", "AGE", "RULE")
    lines: List[Tuple[str, ...]] = [header]
    for entry in _in_order(plan):
        lines.append(("held-back" if entry.held_back else "would-" + entry.action,
                      display(entry.user), display(entry.server) if entry.server else "-",
                      entry.verdict.reason, format_duration(whole_seconds(entry.verdict.idle_for)),
                      format_duration(whole_seconds(entry.verdict.age)), entry.verdict.rule))
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
            for line in lines]
    acting = [entry for entry in plan if not entry.held_back]
    stops = sum(1 for entry in acting if entry.action == "stop")
    held = len(plan) - len(acting)
    text.append("%d server(s) would be stopped, %d user(s) deleted%s; nothing was changed."
                % (stops, len(acting) - stops,
                   ", %d held back by the mass-cull guard" % held if held else ""))
    if warnings:
        text += [""] + warnings_table(warnings)
    return "\n".join(text)


def warnings_table(warnings: Sequence[Notice]) -> List[str]:
    """The warnings a dry run would send (``--warn-before``), under the plan's table."""
    header = ("WARNING", "USER", "SERVER", "REASON", "AT", "RULE")
    lines: List[Tuple[str, ...]] = [header]
    for notice in sorted(warnings, key=lambda n: (n.user or "", n.server is None,
                                                   n.server or "")):
        lines.append((notice.event, display(notice.user or ""),
                      "-" if not notice.server else display(notice.server),
                      notice.reason or "-", iso(notice.at) if notice.at else "-",
                      notice.rule or "-"))
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
            for line in lines]
    return text + ["%d warning(s) would be sent; none was sent." % len(warnings)]


def plan_json(stats: PassStats) -> str:
    """The ``--once --dry-run --output=json`` plan: JSON lines, one per action, then a summary.

    Each action: ``type`` "action", ``action`` (stop, delete), ``user``, ``server`` ("" for
    the default server, null for a user deletion), ``reason``, ``idle_s``, ``age_s`` (whole
    seconds or null), ``rule``, ``profile`` (the server's ``user_options["profile"]`` or
    null) and ``held_back`` (the mass-cull guard holds it back). Then each warning it would
    send: ``type`` "warning", ``event``, ``user``, ``server``, ``reason``, ``idle_s``, ``rule``
    and ``at`` (--warn-before). The summary: ``type``
    "summary", the counts, and what kept the plan from being complete or carried out.
    """
    lines = []
    for entry in _in_order(stats.plan):
        lines.append({
            "type": "action", "action": entry.action, "user": entry.user,
            "server": entry.server if entry.action == "stop" else None,
            "reason": entry.verdict.reason, "idle_s": whole_seconds(entry.verdict.idle_for),
            "age_s": whole_seconds(entry.verdict.age), "rule": entry.verdict.rule,
            "profile": entry.profile, "held_back": entry.held_back})
    for notice in stats.warnings:
        lines.append({
            "type": "warning", "event": notice.event, "user": notice.user,
            "server": notice.server, "reason": notice.reason, "idle_s": notice.idle_s,
            "rule": notice.rule, "at": iso(notice.at) if notice.at else None})
    lines.append(_plan_summary(stats))
    # One object per line, whatever the names hold: escaped as the JSON logs are.
    return "\n".join(json_line(line) for line in lines)


def _plan_summary(stats: PassStats) -> Dict[str, Any]:
    acting = [entry for entry in stats.plan if not entry.held_back]
    stops = sum(1 for entry in acting if entry.action == "stop")
    return {
        "type": "summary", "dry_run": True, "stop": stops, "delete": len(acting) - stops,
        "held_back": len(stats.plan) - len(acting), "users_seen": stats.users_seen,
        "servers_running": stats.servers_running, "kept_by_server": stats.kept_by_server,
        "mass_cull_guard": stats.guard_tripped,
        "error": stats.listing_error or stats.auth_error,
        "complete": outcome(stats) not in (Outcome.FAILED, Outcome.INTERRUPTED),
    }
