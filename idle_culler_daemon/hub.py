"""The JupyterHub REST API client, and the single-user servers asked through the proxy.

``HubClient`` turns the hub's API into typed calls: pagination rebuilt from our own base URL,
every path segment quoted, one table from HTTP status to outcome, errors typed
(``errors.HubError`` and its subclasses) that never carry the token. Sending is
``transport.Transport``'s (``hub``, ``transport`` and ``deadline`` are the only modules that
touch ``requests``): retries (``RetryPolicy``, whose worst case the daemon compares with
systemd's watchdog), one deadline per exchange, answers read up to a cap, no cookies, no
redirects.

What a user controls is hostile (their server answers anything, their names are anything):
the hub's token goes only to the hub's API URL (enforced in ``Transport.send``); a server is
asked once, with a token its own user owns (:meth:`HubClient.server_token`), at a URL that is
a path under the proxy's URL (:func:`server_api_url`); what it answers is capped at 1 MiB.
"""

import enum
import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Dict, List, Optional, Sequence
from urllib.parse import quote, unquote, urlsplit

from idle_culler_daemon.config import HubSettings
from idle_culler_daemon.errors import (
    HubAuthError,
    HubError,
    HubHTTPError,
    HubProtocolError,
    HubUnavailable,
)
from idle_culler_daemon.transport import Answer, RetryPolicy, Transport, clip

PAGINATION_MEDIA_TYPE = "application/jupyterhub-pagination+json"
# The page size asked for without --api-page-size: the hub answers at most its
# api_page_max_limit (200 unless raised), and every page costs it about 20 ms of CPU, so the
# culler asks for as many as it gives (bench/README.md, "Real hub"). Hubs before 2.0 ignore it.
ASK_FOR_THE_MOST = 10000
# What a single-user server's api/status or api/kernels may answer: a few hundred bytes per
# kernel; more than this is not a jupyter-server, and reading it would cost the culler memory.
SERVER_ANSWER_CAP = 2 ** 20
# What one answer of the hub may be: a user's model is about 1-2 KB, so a hub before 2.0,
# which lists every user in one answer, fits some 60,000 users; a paginated page is far less.
HUB_ANSWER_CAP = 128 * 2 ** 20
KERNEL_CHECK_NOTE = "jupyterhub-idle-culler-daemon kernel check"
DEFAULT_POLICY = RetryPolicy()


class StopResult(enum.Enum):
    STOPPED = "stopped"  # 204/200: the server is down
    PENDING = "pending"  # 202, or 400 "in the process of stopping": still alive this pass
    GONE = "gone"        # 404: nothing to stop any more
    UNREACHABLE = "unreachable"  # 404 of a filtered scope: the token cannot reach it


class DeleteResult(enum.Enum):
    DELETED = "deleted"  # 204/200
    BUSY = "busy"        # 400: a server is still stopping; try at the next pass
    GONE = "gone"        # 404
    UNREACHABLE = "unreachable"  # 404 of a filtered scope: the token cannot reach the user


# JupyterHub 2 and later answer a request that a filtered scope (delete:servers!group=lab) does
# not cover with a 404 and this message, the same for a resource outside the filter as for
# one that does not exist. It does not mean "gone": the server may well be running.
NO_ACCESS_MESSAGE = "No access to resources or resources not found"

_STOP_RESULTS = {200: StopResult.STOPPED, 204: StopResult.STOPPED, 202: StopResult.PENDING,
                 400: StopResult.PENDING, 404: StopResult.GONE}
_DELETE_RESULTS = {200: DeleteResult.DELETED, 204: DeleteResult.DELETED,
                   400: DeleteResult.BUSY, 404: DeleteResult.GONE}


@dataclass(frozen=True)
class Page:
    """One page of ``GET /users``; ``next_offset`` is None on the last page; ``date`` is the
    answer's ``Date`` header (the hub's clock, aware UTC), None when absent or unreadable."""

    items: List[Any]
    offset: int = 0
    limit: Optional[int] = None
    total: Optional[int] = None
    next_offset: Optional[int] = None
    date: Optional[datetime] = None


@dataclass(frozen=True)
class ServerToken:
    """A token owned by a server's user, scoped to that one server: what the server gets."""

    id: str  # the hub's token id, for revoking
    value: str = field(repr=False)  # secret: never logged, never in repr


def segment(name: str) -> str:
    """One path segment that stands for exactly ``name``.

    Every character but letters, digits and ``-._~`` is percent-encoded (``c#d`` must not
    become ``c``), and so are the dots of ``.`` and ``..``: as they are, those are dot
    segments, which the HTTP stack removes (``/users/alice/servers/.`` would become
    ``/users/alice/servers/``, alice's default server). The hub decodes ``%2E`` back to ``.``.
    """
    if name in (".", ".."):
        return "%2E" * len(name)
    return quote(name, safe="")


def user_path(user: str) -> str:
    return "/users/" + segment(user)


def server_path(user: str, server: str) -> str:
    """The path to stop a server, every segment quoted (see :func:`segment`)."""
    if server:
        return "%s/servers/%s" % (user_path(user), segment(server))
    return user_path(user) + "/server"


def server_api_url(proxy: str, server_url: str, endpoint: str) -> str:
    """``<proxy><server url>api/<endpoint>``, or HubProtocolError for a URL that is not a path
    under the proxy's URL.

    ``server_url`` is the server's ``url`` from the hub's model: a path such as ``/user/ann/``
    (already escaped by the hub). Refused: ``//host/...`` (another host), ``.``/``..``
    segments, also percent-encoded (they climb out of the server's path: ``/user/b/../``
    would ask ``/user/api/status``), backslashes, ``?``, ``#``, spaces and control
    characters. A whole URL (hubs with ``subdomain_host`` give one, ``https://ann.hub.org/
    user/ann/``) is taken only with the proxy's scheme and port and its host or a subdomain
    of it: JupyterHub gives each user a subdomain of its own host, and anything else is not
    the proxy, so even the user's own token must not go there.
    """
    if not isinstance(server_url, str) or any(c in server_url for c in "\\?# ") \
            or not server_url.isprintable():
        raise HubProtocolError("the server url %r is not a path" % (server_url,))
    base, parts = urlsplit(proxy), urlsplit(server_url)
    if parts.scheme or parts.netloc:
        host = (parts.hostname or "").rstrip(".")
        same = (parts.scheme == base.scheme and "@" not in parts.netloc
                and _port(parts) == _port(base) and host
                and (host == base.hostname or host.endswith("." + (base.hostname or ""))))
        if not same:
            raise HubProtocolError("the server url %r is not under the proxy's URL %s"
                                   % (server_url, proxy))
        origin = "%s://%s" % (parts.scheme, parts.netloc)
    elif server_url.startswith("/") and not server_url.startswith("//"):
        origin = "%s://%s" % (base.scheme, base.netloc)
    else:
        raise HubProtocolError("the server url %r is not a path under the proxy's URL"
                               % (server_url,))
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    if any(unquote(piece) in (".", "..") for piece in path.split("/")):
        raise HubProtocolError("the server url %r has a . or .. segment" % (server_url,))
    return origin + path + "api/" + endpoint


def _port(parts: Any) -> Optional[int]:
    try:
        return parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None


def _decode(where: str, answer: Answer) -> Any:
    """The answer's JSON; a bad answer (not JSON, not UTF-8, nested past the parser's depth)
    is a HubProtocolError like any other."""
    try:
        return json.loads(answer.body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        kind = answer.headers.get("Content-Type") or "no Content-Type"
        text = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise HubProtocolError("%s: the answer is not JSON (%s: %s)" % (where, kind, text)
                               ) from None


def _hub_message(answer: Answer) -> str:
    try:
        body = json.loads(answer.body.decode("utf-8"))
    except (ValueError, RecursionError):
        return answer.reason
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return answer.reason


def _date(answer: Answer) -> Optional[datetime]:
    """The answer's ``Date`` header as an aware UTC datetime, None if absent or unparsable."""
    try:
        when = parsedate_to_datetime(answer.headers.get("Date", ""))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None  # Python 3.9 raises TypeError on an unparsable date, 3.10+ ValueError
    if when is None:
        return None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None \
        else when.astimezone(timezone.utc)


def error_for(method: str, path: str, answer: Answer, secrets: Sequence[str] = ()) -> HubError:
    """Map an unexpected status to a typed error carrying the hub's own message."""
    status = answer.status
    text = clip(_hub_message(answer), secrets)
    if 300 <= status < 400:  # redirects are never followed
        text = "a redirect (to %s), not followed: %s" % (
            clip(answer.headers.get("Location", "-"), secrets, 200), text)
    message = "%s %s answered %d: %s" % (method, path, status, text)
    if status in (401, 403):
        return HubAuthError(message, status)
    if status >= 500 or status == 429:
        return HubUnavailable(message, status)
    return HubHTTPError(message, status)


class HubClient:
    """Calls to the hub's API, and to single-user servers, each sent by ``Transport.send``."""

    def __init__(self, settings: HubSettings, policy: RetryPolicy = DEFAULT_POLICY,
                 cancel: Optional[threading.Event] = None) -> None:
        self._settings = settings
        self._transport = Transport(settings, policy, cancel)
        self._secrets = self._transport.secrets

    def close(self) -> None:
        self._transport.close()

    def _hub(self, method: str, path: str, **request: Any) -> Answer:
        """One request to the hub's API (base URL + ``path``) and its whole answer."""
        return self._transport.send(self._transport.hub, method,
                                    self._transport.api_base + path, HUB_ANSWER_CAP, **request)

    def _get_json(self, path: str, **request: Any) -> Any:
        answer = self._hub("GET", path, **request)
        if answer.status != 200:
            raise error_for("GET", path, answer, self._secrets)
        return _decode("GET " + path, answer)

    def version(self) -> str:
        """``GET /``: the hub's version string."""
        body = self._get_json("/")
        version = body.get("version") if isinstance(body, dict) else None
        if not isinstance(version, str):
            raise HubProtocolError("GET /: no version in the answer")
        return version

    def whoami(self) -> Dict[str, Any]:
        """``GET /user``: the model of the token's owner, with ``scopes`` on hubs >= 2.0."""
        body = self._get_json("/user")
        if not isinstance(body, dict):
            raise HubProtocolError("GET /user: the answer is not an object")
        return body

    def users_page(self, state: Optional[str], offset: int) -> Page:
        """``GET /users``: one page starting at ``offset``.

        The next request is built from our base URL and ``next.offset``; ``next.url`` is
        ignored on purpose, since the hub builds it from the incoming request and behind a TLS
        proxy its scheme can be wrong (jupyterhub#5277).
        """
        params: Dict[str, Any] = {"offset": offset}
        if state:
            params["state"] = state
        params["limit"] = self._settings.page_size or ASK_FOR_THE_MOST
        answer = self._hub("GET", "/users", params=params,
                           headers={"Accept": PAGINATION_MEDIA_TYPE})
        if answer.status != 200:
            raise error_for("GET", "/users", answer, self._secrets)
        body, date = _decode("GET /users", answer), _date(answer)
        if isinstance(body, list):  # hub < 2.0: one plain list, no pagination
            return Page(items=body, date=date)
        try:
            items = body["items"]
            pagination = body["_pagination"]
            following = pagination.get("next")
            next_offset = int(following["offset"]) if following else None
            limit = int(pagination["limit"]) if pagination.get("limit") is not None else None
            total = int(pagination["total"]) if pagination.get("total") is not None else None
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
            raise HubProtocolError("GET /users: unexpected pagination answer") from None
        if not isinstance(items, list):
            raise HubProtocolError("GET /users: 'items' is not a list")
        if next_offset is not None and next_offset <= offset:
            raise HubProtocolError("GET /users: next offset %d does not advance past %d"
                                   % (next_offset, offset))
        return Page(items=items, offset=offset, limit=limit, total=total,
                    next_offset=next_offset, date=date)

    def server_token(self, user: str, server: str, expires_in_s: int) -> ServerToken:
        """``POST /users/{user}/tokens``: a token owned by ``user`` that may only reach the
        server ``user/server`` (hubs before 3 ignore the scopes: it then carries the user's
        own permissions, which the user has anyway), expiring after ``expires_in_s``."""
        path = user_path(user) + "/tokens"
        answer = self._hub("POST", path, json={
            "scopes": ["access:servers!server=%s/%s" % (user, server)],
            "expires_in": int(expires_in_s), "note": KERNEL_CHECK_NOTE})
        if answer.status not in (200, 201):
            raise error_for("POST", path, answer, self._secrets)
        body = _decode("POST " + path, answer)
        token = body.get("token") if isinstance(body, dict) else None
        token_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or not isinstance(token_id, (str, int)):
            raise HubProtocolError("POST %s: no token and id in the answer" % path)
        return ServerToken(id=str(token_id), value=token)

    def revoke_token(self, user: str, token_id: str) -> None:
        """``DELETE /users/{user}/tokens/{id}``; a token already gone (404) is fine."""
        path = "%s/tokens/%s" % (user_path(user), segment(token_id))
        answer = self._hub("DELETE", path)
        if answer.status not in (200, 204, 404):
            raise error_for("DELETE", path, answer, self._secrets)

    def server_status(self, server_url: str, token: ServerToken) -> Any:
        """``GET <proxy><server url>api/status`` of a single-user server: its JSON answer."""
        return self._server_get(server_url, "status", token)

    def server_kernels(self, server_url: str, token: ServerToken) -> Any:
        """``GET <proxy><server url>api/kernels`` of a single-user server: its JSON answer."""
        return self._server_get(server_url, "kernels", token)

    def _server_get(self, server_url: str, endpoint: str, token: ServerToken) -> Any:
        """Ask a single-user server (jupyter-server) itself, through the proxy.

        With ``token`` only (minted for this server, owned by its user), on the servers'
        Session: asked once, with ``no_track_activity=1`` so the question is not activity.
        Any status but 200 is an error (a server that is not running, or a login page,
        answers with a redirect; 404 is not a jupyter-server), as is an answer over 1 MiB.
        """
        base = self._settings.server_url_base
        if not base:
            raise HubProtocolError("no proxy URL (--server-url-base) to ask servers through")
        url = server_api_url(base, server_url, endpoint)
        where = "GET " + urlsplit(url).path
        answer = self._transport.send(
            self._transport.servers, "GET", url, SERVER_ANSWER_CAP,
            params={"no_track_activity": "1"},
            headers={"Accept": "application/json", "Authorization": "token " + token.value})
        if answer.status != 200:
            raise error_for("GET", urlsplit(url).path, answer, self._secrets + (token.value,))
        return _decode(where, answer)

    def stop_server(self, user: str, server: str, remove: bool) -> StopResult:
        """Stop (and with ``remove``, delete) a server: ``DELETE /users/{u}/server[s/{s}]``."""
        path = server_path(user, server)
        body = {"remove": True} if (server and remove) else None
        answer = self._hub("DELETE", path, json=body)
        return self._outcome(path, answer, _STOP_RESULTS, StopResult.UNREACHABLE)

    def delete_user(self, user: str) -> DeleteResult:
        """Delete a user record: ``DELETE /users/{u}``."""
        path = user_path(user)
        answer = self._hub("DELETE", path)
        return self._outcome(path, answer, _DELETE_RESULTS, DeleteResult.UNREACHABLE)

    def _outcome(self, path: str, answer: Answer, table: Dict[int, Any],
                 unreachable: Any) -> Any:
        """The outcome of a DELETE from its status (``table``); a 404 of a filtered scope is
        ``unreachable``, any status not in the table an error."""
        if answer.status == 404 and _hub_message(answer) == NO_ACCESS_MESSAGE:
            return unreachable
        result = table.get(answer.status)
        if result is None:
            raise error_for("DELETE", path, answer, self._secrets)
        return result
