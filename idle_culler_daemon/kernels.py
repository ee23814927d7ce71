"""The kernel check (``--check-kernels``): a second look, with the server's own word, at a stop
whose verdict asks for one, just before it is sent.

The server is asked with a token the culler mints for that server's owner, limited to that one
server and short-lived (``hub.server_token``), never with the culler's own: a user's server is
the user's to read, and what it receives must be no more than its owner already has. The token
is revoked after the questions, best effort (it expires anyway). A server that cannot be asked,
for whatever reason, is judged by the hub's data alone; a failure for one server changes
nothing for any other (each reason is logged once per pass, the rest at DEBUG).
"""

import threading
from datetime import datetime
from typing import Any, Dict, Protocol, Set

from idle_culler_daemon.context import PassContext
from idle_culler_daemon.errors import HubAuthError, HubError, HubUnavailable, ModelError
from idle_culler_daemon.jobs import Stop, verdict_fields
from idle_culler_daemon.log import REDACTED, get_logger
from idle_culler_daemon.model import parse_server_status
from idle_culler_daemon.policy import Verdict, judge_server_status, kernels_needed

log = get_logger(__name__)

TOKEN_SCOPE_HINT = ("the culler's token needs the scope tokens (it mints, for each server it "
                    "asks, a short-lived token of the server's owner limited to that server)")


class ServerToken(Protocol):
    """A minted token (``hub.ServerToken``); only its ``id`` is read here, its secret never."""

    @property
    def id(self) -> str: ...


class KernelHub(Protocol):
    """What the kernel check needs from the hub (``hub.HubClient``, or a fake in tests)."""

    def server_token(self, user: str, server: str, expires_in_s: int) -> ServerToken: ...

    def revoke_token(self, user: str, token_id: str) -> None: ...

    def server_status(self, server_url: str, token: ServerToken) -> Any: ...

    def server_kernels(self, server_url: str, token: ServerToken) -> Any: ...


class _Once:
    """Reasons already logged at WARNING in this pass (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: Set[str] = set()

    def first(self, reason: str) -> bool:
        with self._lock:
            new = reason not in self._seen
            self._seen.add(reason)
            return new


class KernelCheck:
    """The second look of one pass; :meth:`look` is called from the workers."""

    def __init__(self, hub: KernelHub, context: PassContext, now: datetime) -> None:
        self._hub = hub
        self._context = context
        self._now = now
        self._logged = _Once()

    def look(self, user: str, stop: Stop) -> Verdict:
        """The verdict to act on: the stop's own, or a KEEP when a kernel is busy or the
        server's own activity is recent. ``api/kernels`` is asked only when ``api/status``
        leaves the question open."""
        verdict = stop.verdict
        if verdict.check_within_s is None:
            return verdict
        who = {"user": user, "server": stop.server or "-"}
        if not stop.url:
            self._failed(who, "no-url", "the hub's model has no url for this server")
            return verdict
        self._context.stats.add(checked=1)
        try:
            token = self._hub.server_token(user, stop.server, self._context.runtime.check_token_s)
        except HubError as exc:
            self._failed(who, "token-refused" if isinstance(exc, HubAuthError) else "no-token",
                         str(exc))
            return verdict
        except Exception:
            return self._bug(who, verdict)
        try:
            judged = self._ask(stop.url, token, verdict)
        except (HubError, ModelError, RecursionError) as exc:
            self._failed(who, _failure(exc), str(exc))
            return verdict
        except Exception:
            return self._bug(who, verdict)
        finally:
            self._revoke(user, token)
        if not judged.acts:
            self._context.stats.add(kept_by_server=1)
            log.info("keep", **who, **verdict_fields(judged))
        return judged

    def _ask(self, url: str, token: ServerToken, verdict: Verdict) -> Verdict:
        body = self._hub.server_status(url, token)
        status = parse_server_status(body)
        judged = judge_server_status(verdict, status, self._now)
        if kernels_needed(judged, status):
            status = parse_server_status(body, self._hub.server_kernels(url, token))
            judged = judge_server_status(verdict, status, self._now)
        return judged

    def _revoke(self, user: str, token: ServerToken) -> None:
        """Revoke the minted token, best effort: it expires anyway."""
        try:
            self._hub.revoke_token(user, token.id)
        except Exception as exc:  # noqa: BLE001 - nothing to do about it but say so
            # any exception lands here: its text must not carry the minted token itself
            error = str(exc).replace(token.value, REDACTED) if token.value else str(exc)
            log.debug("kernel-check-token-kept", user=user, error=error,
                      detail="not revoked; it expires by itself")

    def _bug(self, who: Dict[str, str], verdict: Verdict) -> Verdict:
        """A bug must not end the pass: the server is judged by the hub's data."""
        log.exception("kernel-check-failed", **who, reason="bug")
        self._context.stats.add(check_failed=1)
        return verdict

    def _failed(self, who: Dict[str, str], reason: str, error: str) -> None:
        """Count a server that could not be asked; log each reason once per pass."""
        self._context.stats.add(check_failed=1)
        extra = {"hint": TOKEN_SCOPE_HINT} if reason == "token-refused" else {}
        if self._logged.first(reason):
            log.warning("kernel-check-failed", **who, reason=reason, error=error, **extra,
                        detail="judged by the hub's data alone; more of this kind in this "
                               "pass are logged at DEBUG")
        else:
            log.debug("kernel-check-failed", **who, reason=reason, error=error)


def _failure(exc: BaseException) -> str:
    """Why a server could not be asked, as a short reason for the log."""
    status = getattr(exc, "status", None)
    if isinstance(exc, HubAuthError):
        return "refused"
    if isinstance(exc, (ModelError, RecursionError)) or status == 404:
        return "not-jupyter-server"  # no api/status, or not the answer jupyter-server gives
    if status is None:
        return "no-answer" if isinstance(exc, HubUnavailable) else "not-jupyter-server"
    if 300 <= status < 400:
        return "redirected"  # the hub's "not running" page, or a login
    return "http-%d" % status
