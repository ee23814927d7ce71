"""The JupyterHub REST API client: the only module that touches ``requests``.

One ``requests.Session`` per process, retries through urllib3 ``Retry`` configured once from
the ``RetryPolicy`` below, a ``(connect, read)`` timeout on every call and a deadline on every
body, pagination rebuilt from our own base URL, every path segment quoted, and one table from
HTTP status to outcome. Errors come out typed (``errors.HubError`` and its subclasses) and never
carry the token. The retry policy also gives the worst case of one call, which the daemon
compares with systemd's watchdog interval and uses as the stall limit of a pass.
"""

import enum
import json
import re
import socket
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence
from urllib.parse import quote, urlencode, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from idle_culler_daemon import __version__
from idle_culler_daemon.config import HubSettings
from idle_culler_daemon.errors import (
    HubAuthError,
    HubError,
    HubHTTPError,
    HubProtocolError,
    HubUnavailable,
)
from idle_culler_daemon.log import get_logger

log = get_logger(__name__)

PAGINATION_MEDIA_TYPE = "application/jupyterhub-pagination+json"
# The page size asked for without --api-page-size: the hub answers at most its
# api_page_max_limit (200 unless raised), and every page costs it about 20 ms of CPU, so the
# culler asks for as many as it gives (bench/README.md, "Real hub"). Hubs before 2.0 ignore it.
ASK_FOR_THE_MOST = 10000
REDACTED = "<redacted>"  # what the token becomes in an error text (as in the log)
# "<urllib3.connection.HTTPConnection object at 0x7f...>: " in urllib3's error texts
_OBJECT_REPR = re.compile(r"<[^<>]* object at 0x[0-9a-f]+>:?\s*")
USER_AGENT = "jupyterhub-idle-culler-daemon/%s" % __version__


@dataclass(frozen=True)
class RetryPolicy:
    """How a call to the hub is retried and how long it may take (not user settings).

    Connection errors, read errors and 429/502/503/504 answers to GET and DELETE are retried
    ``retries`` times with exponential backoff; ``Retry-After`` is honoured up to
    ``retry_after_cap_s``.
    """

    retries: int = 3
    backoff_factor: float = 0.5
    retry_after_cap_s: float = 30.0
    connect_timeout: float = 3.05  # just above a multiple of 3 s, the TCP SYN retransmission step

    def worst_case_call_s(self, read_timeout: float) -> float:
        """Upper bound of one call, retries, backoff and Retry-After waits included.

        Each attempt may spend a connect and a read timeout; each wait between attempts is at
        most the Retry-After cap (the backoff waits are shorter); a listing's body has one more
        read timeout as its own deadline.
        """
        attempts = self.retries + 1
        waits = sum(max(self.backoff_factor * 2 ** attempt, self.retry_after_cap_s)
                    for attempt in range(self.retries))
        return attempts * (self.connect_timeout + read_timeout) + waits + read_timeout


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
    """One page of ``GET /users``; ``next_offset`` is None on the last page."""

    items: List[Any]
    offset: int = 0
    limit: Optional[int] = None
    total: Optional[int] = None
    next_offset: Optional[int] = None


class CappedRetry(Retry):
    """``Retry`` with three additions that urllib3 (1.26 and 2.x) does not offer.

    ``Retry-After`` waits are capped; no retry starts once ``cancel`` is set (after SIGTERM
    the daemon must end within one request timeout, not after every retry); and each failed
    attempt is one ``hub-attempt-failed`` WARNING of our own (what, where, attempt n of m,
    when the next try comes), instead of urllib3's "Retrying" warnings.
    """

    cancel: Optional[threading.Event] = None
    cap_s: float = RetryPolicy.retry_after_cap_s

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), self.cap_s)

    def new(self, **kwargs: Any) -> "CappedRetry":
        retry = super().new(**kwargs)
        retry.cancel, retry.cap_s = self.cancel, self.cap_s
        return retry

    def increment(self, method=None, url=None, response=None, error=None, _pool=None,
                  _stacktrace=None):  # noqa: ANN001 - urllib3's own signature
        if self.cancel is not None and self.cancel.is_set():
            raise MaxRetryError(_pool, url, error or ResponseError("stopping: no retry"))
        try:
            retry = super().increment(method, url, response, error, _pool, _stacktrace)
        except MaxRetryError:
            self._log_attempt(method, url, response, error, _pool, None)
            raise
        self._log_attempt(method, url, response, error, _pool, retry)
        return retry

    # shape: urllib3's increment arguments, passed through as they are
    def _log_attempt(self, method: Optional[str], url: Optional[str], response: Any,
                     error: Optional[Exception], pool: Any, retry: Optional[Retry]) -> None:
        """One line per failed attempt; ``retry`` is None when no attempt follows."""
        if retry is None:
            wait: Optional[float] = None
        else:
            after = self.get_retry_after(response) if response is not None else None
            wait = round(after if after else retry.get_backoff_time(), 2)
        where = "%s://%s:%s" % (getattr(pool, "scheme", "?"), getattr(pool, "host", "?"),
                                getattr(pool, "port", "?"))
        if error is not None:
            what = "%s: %s" % (error.__class__.__name__,
                               _OBJECT_REPR.sub("", str(error)).replace("\n", " ")[:300])
        else:
            what = "HTTP %s" % getattr(response, "status", "?")
        log.warning("hub-attempt-failed", request="%s %s" % (method, url), hub=where,
                    attempt=len(self.history) + 1, attempts=_total_attempts(self),
                    error=what, retry_in_s=wait,
                    detail="giving up" if retry is None else "trying again")


def _total_attempts(retry: Retry) -> int:
    """The attempts a request gets in all: those made so far plus what ``retry`` allows."""
    left = retry.total if isinstance(retry.total, int) and retry.total is not True else 0
    return len(retry.history) + 1 + max(left, 0)


class _TokenAuth(AuthBase):
    """Adds ``Authorization: token …``; keeps ``.netrc`` out and the token out of ``repr``."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = "token " + self._token
        return request

    def __repr__(self) -> str:
        return "<token auth>"


def build_session(settings: HubSettings, policy: RetryPolicy = RetryPolicy(),
                  cancel: Optional[threading.Event] = None) -> requests.Session:
    """Build the process's one Session; it is never mutated afterwards."""
    retry = CappedRetry(
        total=policy.retries, connect=policy.retries, read=policy.retries,
        status=policy.retries, other=0, redirect=0,
        status_forcelist=(429, 502, 503, 504),
        allowed_methods=frozenset({"GET", "DELETE"}),
        backoff_factor=policy.backoff_factor, raise_on_status=False,
        respect_retry_after_header=True)
    retry.cancel, retry.cap_s = cancel, policy.retry_after_cap_s
    # Workers plus the main thread may each hold a connection: size the pool for all of them,
    # otherwise urllib3 discards connections ("Connection pool is full").
    adapter = HTTPAdapter(max_retries=retry, pool_connections=2,
                          pool_maxsize=settings.pool_size + 1)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if settings.server_url_base:
        # Single-user servers are asked through the proxy once, never retried: one that does
        # not answer within the request timeout is judged by the hub's data alone. requests
        # picks the adapter with the longest matching prefix, so the hub's API keeps its
        # retries even when it is reached through the same proxy.
        session.mount(settings.server_url_base + "/",
                      HTTPAdapter(max_retries=0, pool_connections=1,
                                  pool_maxsize=settings.pool_size + 1))
        session.mount(settings.api_url, adapter)
    session.auth = _TokenAuth(settings.token)
    session.headers["User-Agent"] = USER_AGENT
    if settings.client_cert:
        session.cert = settings.client_cert
    # Read the environment (proxies, REQUESTS_CA_BUNDLE) once for the hub's URL, as requests
    # would on every request, then stop it doing so: that scan was a tenth of the culler's
    # CPU time at 10k users.
    from_env = session.merge_environment_settings(settings.api_url, {}, None,
                                                  settings.ca_bundle or True, None)
    session.proxies = from_env["proxies"]
    session.verify = from_env["verify"]
    session.trust_env = False
    return session


def server_request_settings(server_url_base: str, session: requests.Session) -> Dict[str, Any]:
    """``verify`` and ``proxies`` for requests to the proxy, read from the environment once.

    The session's own were read for the hub's API URL (and trust the hub's internal CA with
    ``--ssl-enabled``); the proxy's public URL gets what requests would pick for it: the
    default certificate bundle (or ``REQUESTS_CA_BUNDLE``) and its own proxies, or none where
    ``NO_PROXY`` says so (a proxy the session has is then switched off with ``None``).
    """
    reader = requests.Session()
    try:
        found = reader.merge_environment_settings(server_url_base + "/", {}, None, True, None)
    finally:
        reader.close()
    proxies: Dict[str, Optional[str]] = {key: None for key in session.proxies}
    proxies.update(found["proxies"])
    wanted = {"verify": found["verify"], "proxies": proxies}
    # only what differs from the session's own: each keyword costs CPU on every request
    return {key: value for key, value in wanted.items() if value != getattr(session, key)}


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


def _hub_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason or ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return response.reason or ""


def clip(text: str, secrets: Sequence[str] = (), limit: int = 300) -> str:
    """``text`` without the secrets, then cut to ``limit`` characters: in that order, since a
    cut through a secret would leave a prefix of it that nothing could recognise any more."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text[:limit]


def error_for(method: str, path: str, response: requests.Response,
              secrets: Sequence[str] = ()) -> HubError:
    """Map an unexpected status to a typed error carrying the hub's own message."""
    status = response.status_code
    text = clip(_hub_message(response), secrets)
    if 300 <= status < 400:  # only DELETEs get here: they do not follow redirects
        text = "a redirect (to %s), not followed: %s" % (
            clip(response.headers.get("Location", "-"), secrets, 200), text)
    message = "%s %s answered %d: %s" % (method, path, status, text)
    if status in (401, 403):
        return HubAuthError(message, status)
    if status >= 500 or status == 429:
        return HubUnavailable(message, status)
    return HubHTTPError(message, status)


class HubClient:
    """Calls to the hub API, each through ``_call`` with timeouts and retries."""

    def __init__(self, settings: HubSettings, policy: RetryPolicy = RetryPolicy(),
                 cancel: Optional[threading.Event] = None) -> None:
        self._settings = settings
        self._timeout = (policy.connect_timeout, settings.read_timeout)
        self._base = _prepared_base(settings.api_url)
        self._secrets = (settings.token,)
        self._session = build_session(settings, policy, cancel)
        # every request's headers: the Session's (User-Agent, Accept, ...), with its auth (the
        # token) applied once here
        template = requests.PreparedRequest()
        template.headers = CaseInsensitiveDict(self._session.headers)
        self._headers = self._session.auth(template).headers
        self._api_settings = {"verify": self._session.verify, "proxies": self._session.proxies,
                              "cert": self._session.cert}
        self._server_settings = (server_request_settings(settings.server_url_base,
                                                         self._session)
                                 if settings.server_url_base else {})

    def close(self) -> None:
        self._session.close()

    def _call(self, method: str, path: str, base: Optional[str] = None,
              **options: Any) -> requests.Response:
        """Send one request to ``base`` (default: the API URL) + ``path``; the only place
        that uses the session.

        ``options``: ``params``, ``headers``, ``json``, ``stream``, ``allow_redirects``
        (default: GET only) and, for requests to the proxy, ``verify`` and ``proxies``.

        The request is prepared here from what the Session holds, which never changes after
        it was built (its headers, the token, its cookies), rather than by
        ``Session.request``, which merges all of that again for every call: a third of the
        culler's CPU per request. This also sends the path exactly as :func:`segment` wrote
        it (requests would re-quote it, and decode ``%2E`` to a dot segment). A DELETE does
        not follow redirects: a 3xx is an answer (an error), not a stop somewhere else, or a
        GET that a 302 would make of it.
        """
        redirects = options.pop("allow_redirects", method == "GET")
        params = options.pop("params", None)
        headers = CaseInsensitiveDict(self._headers)
        headers.update(options.pop("headers", None) or {})
        settings = dict(self._api_settings)  # verify, proxies, cert: the Session's, read once
        settings.update((key, options.pop(key)) for key in ("verify", "proxies")
                        if key in options)
        try:
            prepared = requests.PreparedRequest()
            prepared.prepare_method(method)
            prepared.url = (base or self._base) + path + ("?" + urlencode(params) if params
                                                           else "")
            prepared.headers = headers
            prepared.prepare_cookies(self._session.cookies)  # Session.send reads them on a 3xx
            prepared.prepare_body(None, None, options.pop("json", None))
            return self._session.send(prepared, timeout=self._timeout, allow_redirects=redirects,
                                      stream=options.pop("stream", False), **settings)
        except requests.RequestException as exc:
            raise HubUnavailable("%s %s: %s" % (method, path, _describe(exc, self._secrets))
                                 ) from None

    def _get_json(self, path: str, params: Optional[Dict[str, Any]] = None,
                  headers: Optional[Dict[str, str]] = None, **request: Any) -> Any:
        """GET and decode JSON, the whole body within one read timeout.

        requests' read timeout bounds each gap between bytes, not the whole body: a hub that
        trickles a page forever would hang the pass. A timer shuts the socket down when the
        body is not complete in time. It stays a timer because the body is read in blocking
        chunks (urllib3 1.26 has no read-at-most-once call) that a slow sender can stretch
        without limit, so a deadline checked between reads could not end the read in progress.
        """
        response = self._call("GET", path, params=params, headers=headers, stream=True,
                              **request)
        expired = threading.Event()
        timer = threading.Timer(self._settings.read_timeout, _abort_read, (response, expired))
        timer.daemon = True
        timer.start()
        try:
            body = response.content
        except requests.RequestException as exc:
            if expired.is_set():
                raise HubUnavailable("GET %s: the answer took longer than %ss to arrive"
                                     % (path, self._settings.read_timeout)) from None
            raise HubUnavailable("GET %s: %s" % (path, _describe(exc, self._secrets))
                                 ) from None
        finally:
            timer.cancel()
            response.close()
        if expired.is_set():  # urllib3 1.26 may return the cut body without an error
            raise HubUnavailable("GET %s: the answer took longer than %ss to arrive"
                                 % (path, self._settings.read_timeout))
        if response.status_code != 200:
            raise error_for("GET", path, response, self._secrets)
        try:
            return json.loads(body.decode("utf-8"))
        except ValueError as exc:
            kind = response.headers.get("Content-Type") or "no Content-Type"
            raise HubProtocolError("GET %s: the answer is not JSON (%s: %s)"
                                   % (path, kind, exc)) from None

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
        body = self._get_json("/users", params=params,
                              headers={"Accept": PAGINATION_MEDIA_TYPE})
        if isinstance(body, list):  # hub < 2.0: one plain list, no pagination
            return Page(items=body)
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
                    next_offset=next_offset)

    def server_status(self, server_url: str) -> Any:
        """``GET <proxy><server url>api/status`` of a single-user server: its JSON answer."""
        return self._server_get(server_url, "status")

    def server_kernels(self, server_url: str) -> Any:
        """``GET <proxy><server url>api/kernels`` of a single-user server: its JSON answer."""
        return self._server_get(server_url, "kernels")

    def _server_get(self, server_url: str, endpoint: str) -> Any:
        """Ask a single-user server (jupyter-server) itself, through the proxy.

        ``server_url`` is the server's ``url`` from the hub's model (a path such as
        ``/user/ann/``, already escaped by the hub; a whole URL on hubs with subdomains). The
        token goes in the ``Authorization`` header only, as for the hub (the server checks it
        with the hub: ``access:servers``). Sent once, with ``no_track_activity=1`` so that the
        question itself is not activity, and redirects are not followed: a server that is
        not running, or a login page, answers with one, which is an error here, like 404 (not
        a jupyter-server) and any other status but 200.
        """
        base = self._settings.server_url_base
        if not base:
            raise HubProtocolError("no proxy URL (--server-url-base) to ask servers through")
        url = urljoin(base + "/", server_url if server_url.endswith("/") else server_url + "/")
        parts = urlsplit(url)
        return self._get_json(parts.path + "api/" + endpoint, {"no_track_activity": "1"},
                              {"Accept": "application/json"},
                              base="%s://%s" % (parts.scheme, parts.netloc),
                              allow_redirects=False, **self._server_settings)

    def stop_server(self, user: str, server: str, remove: bool) -> StopResult:
        """Stop (and with ``remove``, delete) a server: ``DELETE /users/{u}/server[s/{s}]``."""
        path = server_path(user, server)
        body = {"remove": True} if (server and remove) else None
        response = self._call("DELETE", path, json=body)
        with response:
            return self._outcome(path, response, _STOP_RESULTS, StopResult.UNREACHABLE)

    def delete_user(self, user: str) -> DeleteResult:
        """Delete a user record: ``DELETE /users/{u}``."""
        path = user_path(user)
        response = self._call("DELETE", path)
        with response:
            return self._outcome(path, response, _DELETE_RESULTS, DeleteResult.UNREACHABLE)

    def _outcome(self, path: str, response: requests.Response, table: Dict[int, Any],
                 unreachable: Any) -> Any:
        """The outcome of a DELETE from its status (``table``); a 404 of a filtered scope is
        ``unreachable``, any status not in the table an error."""
        if response.status_code == 404 and _hub_message(response) == NO_ACCESS_MESSAGE:
            return unreachable
        result = table.get(response.status_code)
        if result is None:
            raise error_for("DELETE", path, response, self._secrets)
        return result


def _prepared_base(url: str) -> str:
    """The base URL as requests writes it (host in IDNA, path quoted), without a trailing
    ``/``; our own paths, already quoted, go after it."""
    try:
        url = requests.Request("GET", url).prepare().url
    except requests.RequestException:
        pass  # every call will fail with this error, as a HubUnavailable
    return url.rstrip("/")


def _abort_read(response: requests.Response, expired: threading.Event) -> None:
    """Shut down the socket under a response whose body is overdue (runs in the timer)."""
    expired.set()
    connection = getattr(response.raw, "connection", None)  # urllib3 1.26 and 2.x
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: the read has ended anyway


def _describe(exc: Exception, secrets: Sequence[str] = ()) -> str:
    """A one-line description of a requests error, without the request's headers."""
    reason = exc
    while reason.args and isinstance(reason.args[0], Exception):
        reason = reason.args[0]
    text = str(reason).replace("\n", " ")
    return "%s: %s" % (exc.__class__.__name__, clip(text, secrets))
