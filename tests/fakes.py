"""In-memory fakes for our own seams (docs/architecture.md): a hub behind the ``HubApi`` Protocol,
a recording notifier and a manual clock. Real loopback servers live in
``tests/support/fakehub.py``."""

import itertools
import threading
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional, Tuple

from idle_culler_daemon.errors import HubError, HubHTTPError
from idle_culler_daemon.hub import DeleteResult, Page, StopResult

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)


def stamp(seconds_ago: Optional[float], now: datetime = NOW) -> Optional[str]:
    """An ISO 8601 timestamp ``seconds_ago`` before ``now``, as the hub writes it."""
    if seconds_ago is None:
        return None
    return (now - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def server_model(idle_s: Optional[float] = 0, age_s: Optional[float] = None, ready: bool = True,
                 pending: Optional[str] = None, name: str = "",
                 url: str = "/user/x/%s") -> Dict[str, Any]:
    return {"name": name, "ready": ready, "pending": pending,
            "last_activity": stamp(idle_s),
            "started": stamp(age_s if age_s is not None else idle_s),
            "url": url % name if "%s" in url else url}


def user_model(name: str, servers: Optional[Dict[str, Dict[str, Any]]] = None,
               idle_s: Optional[float] = 0, created_s: Optional[float] = 86400 * 30,
               admin: bool = False, groups: Tuple[str, ...] = ()) -> Dict[str, Any]:
    return {"kind": "user", "name": name, "admin": admin, "groups": list(groups),
            "created": stamp(created_s), "last_activity": stamp(idle_s),
            "servers": servers or {}}


@dataclass(frozen=True)
class FakeToken:
    """Stands in for ``hub.ServerToken``: a token minted for one user's server."""

    id: str
    value: str = field(repr=False)
    user: str = ""
    server: str = ""


class MemoryHub:
    """Implements ``cull.HubApi`` in memory and records every call.

    Kernel checks: ``server_token`` mints a ``FakeToken`` for the server's owner (or raises what
    ``token_results[user]`` holds), ``server_status``/``server_kernels`` answer what
    ``servers[url]`` holds and record the token they were given, ``revoke_token`` records the
    revocation (or raises ``revoke_error``). ``date`` is every page's ``Date`` (the hub's
    clock; None: the answers carry none).
    """

    def __init__(self, users: List[Dict[str, Any]], page_size: int = 50,
                 stop_results: Optional[Dict[Tuple[str, str], Any]] = None,
                 delete_results: Optional[Dict[str, Any]] = None,
                 servers: Optional[Dict[str, Dict[str, Any]]] = None,
                 token_results: Optional[Dict[str, Exception]] = None,
                 revoke_error: Optional[Exception] = None,
                 date: Optional[datetime] = NOW) -> None:
        self.users = list(users)
        self.page_size = page_size
        self.date = date
        self.calls: List[Tuple] = []
        self._stop_results = stop_results or {}
        self._delete_results = delete_results or {}
        # What single-user servers answer, by the server's url: {"status": body or an
        # exception, "kernels": ...}; a url not here answers 424 (not running).
        self._servers = servers or {}
        self._token_results = token_results or {}
        self._revoke_error = revoke_error
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _record(self, *call: Any) -> None:
        with self._lock:
            self.calls.append(call)

    def _running(self, model: Dict[str, Any]) -> bool:
        return bool(model.get("servers"))

    def users_page(self, state: Optional[str], offset: int) -> Page:
        self._record("list", state, offset)
        if state == "ready":
            chosen = [u for u in self.users if self._running(u)]
        elif state == "inactive":
            chosen = [u for u in self.users if not self._running(u)]
        else:
            chosen = list(self.users)
        items = chosen[offset:offset + self.page_size]
        following = offset + self.page_size
        return Page(items=items, offset=offset, limit=self.page_size, total=len(chosen),
                    next_offset=following if following < len(chosen) else None, date=self.date)

    def stop_server(self, user: str, server: str, remove: bool) -> StopResult:
        self._record("stop", user, server, remove)
        result = self._stop_results.get((user, server), StopResult.STOPPED)
        if isinstance(result, Exception):
            raise result
        return result

    def delete_user(self, user: str) -> DeleteResult:
        self._record("delete", user)
        result = self._delete_results.get(user, DeleteResult.DELETED)
        if isinstance(result, Exception):
            raise result
        return result

    def server_token(self, user: str, server: str, expires_in_s: int) -> FakeToken:
        self._record("token", user, server, expires_in_s)
        refusal = self._token_results.get(user)
        if refusal is not None:
            raise refusal
        number = next(self._ids)
        return FakeToken("t%d" % number, "secret-of-%s-%d" % (user, number), user, server)

    def revoke_token(self, user: str, token_id: str) -> None:
        self._record("revoke", user, token_id)
        if self._revoke_error is not None:
            raise self._revoke_error

    def server_status(self, server_url: str, token: FakeToken) -> Any:
        self._record("status", server_url, token)
        return self._server_answer(server_url, "status")

    def server_kernels(self, server_url: str, token: FakeToken) -> Any:
        self._record("kernels", server_url, token)
        return self._server_answer(server_url, "kernels")

    def _server_answer(self, server_url: str, what: str) -> Any:
        answer = self._servers.get(server_url, {}).get(
            what, HubHTTPError("GET %sapi/%s answered 424" % (server_url, what), 424))
        if isinstance(answer, Exception):
            raise answer
        return answer

    def of_kind(self, kind: str) -> List[Tuple]:
        return [call for call in self.calls if call[0] == kind]


class InlineExecutor(Executor):
    """Runs each job at once in the calling thread: deterministic unit tests of a pass."""

    def submit(self, fn, *args, **kwargs):  # type: ignore[override]
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: B036 - hand every outcome to the future
            future.set_exception(exc)
        return future


class RecordingNotifier:
    """Stands in for ``notify.Notifier``; records what would be sent."""

    def __init__(self, tick_s: float = 0.01) -> None:
        self.messages: List[str] = []
        self.ready_statuses: List[str] = []
        self.tick_s = tick_s
        self.watchdog_s = None
        self.enabled = True

    def ready(self, status: str = "") -> None:
        self.messages.append("READY=1")
        self.ready_statuses.append(status)

    def reloading(self, status: str = "") -> None:
        self.messages.append("RELOADING=1")

    def status(self, text: str) -> None:
        self.messages.append("STATUS=" + text)

    def heartbeat(self) -> None:
        self.messages.append("WATCHDOG=1")

    def stopping(self, status: str = "") -> None:
        self.messages.append("STOPPING=1")


__all__ = ["FakeToken", "MemoryHub", "HubError", "InlineExecutor", "NOW", "RecordingNotifier",
           "server_model", "stamp", "user_model"]
