"""HTTP for the hub client: two Sessions, retries, one deadline per exchange, bounded bodies.

``requests`` used as documented: ``Session.prepare_request`` then ``Session.send`` through a
mounted ``HTTPAdapter``. The hub's Session retries through urllib3 (``CappedRetry``); the
single-user servers' Session never retries. Neither keeps cookies, neither follows redirects,
neither carries a credential of its own: :meth:`Transport.send`, the one place a request goes
out, adds the hub's token only to a URL under the hub's API base. Every answer is read in
chunks up to a cap, within one deadline that starts when the request is written.
"""

import re
import threading
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Dict, Mapping, Optional, Sequence

import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.cookies import RequestsCookieJar
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from idle_culler_daemon import __version__
from idle_culler_daemon.config import HubSettings
from idle_culler_daemon.deadline import Alarms, Deadline, WatchedAdapter
from idle_culler_daemon.errors import HubError, HubProtocolError, HubUnavailable
from idle_culler_daemon.log import REDACTED, get_logger

log = get_logger(__name__)

USER_AGENT = "jupyterhub-idle-culler-daemon/%s" % __version__
CHUNK = 64 * 1024
# "<urllib3.connection.HTTPConnection object at 0x7f...>: " in urllib3's error texts
_OBJECT_REPR = re.compile(r"<[^<>]* object at 0x[0-9a-f]+>:?\s*")


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

        Each attempt may spend a connect timeout and one deadline (``read_timeout``, headers
        and body together); each wait between attempts is at most the Retry-After cap (the
        backoff waits are shorter); one more read timeout is kept as slack.
        """
        attempts = self.retries + 1
        waits = sum(max(self.backoff_factor * 2 ** attempt, self.retry_after_cap_s)
                    for attempt in range(self.retries))
        return attempts * (self.connect_timeout + read_timeout) + waits + read_timeout


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
        deadline = Deadline.current()
        if deadline is not None and deadline.expired:
            what = "the answer took longer than %ss" % deadline.seconds
        elif error is not None:
            what = "%s: %s" % (error.__class__.__name__,
                               _OBJECT_REPR.sub("", str(error)).replace("\n", " ")[:300])
        else:
            what = "HTTP %s" % getattr(response, "status", "?")
        left = self.total if isinstance(self.total, int) and self.total is not True else 0
        log.warning("hub-attempt-failed", request="%s %s" % (method, url), hub=where,
                    attempt=len(self.history) + 1, attempts=len(self.history) + 1 + left,
                    error=what, retry_in_s=wait,
                    detail="giving up" if retry is None else "trying again")


# --- the two Sessions ------------------------------------------------------------------------

class _NoNetrc(AuthBase):
    """Adds nothing: given as a request's ``auth``, it keeps requests from taking credentials
    for the URL's host from ``~/.netrc`` (which it does for a request without one), so a
    request carries exactly the headers :meth:`Transport.send` chose."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


def _session(adapter: HTTPAdapter, verify: Any, url: Optional[str]) -> requests.Session:
    session = requests.Session()
    # The proxies the environment names for ``url`` (NO_PROXY honoured), read once here with
    # requests' own reader: Session.send before requests 2.28 (RHEL 9, Debian 12) does not
    # read the environment, later ones read it again on each request and agree.
    if url:
        session.proxies = requests.utils.get_environ_proxies(url)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # keep no cookie, so none is ever sent: every domain is outside an empty allow-list
    session.cookies = RequestsCookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    session.headers["User-Agent"] = USER_AGENT
    session.verify = verify
    return session


def build_session(settings: HubSettings, policy: RetryPolicy = RetryPolicy(),
                  cancel: Optional[threading.Event] = None) -> requests.Session:
    """The hub's Session: retries through :class:`CappedRetry`; never mutated afterwards."""
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
    adapter = WatchedAdapter(max_retries=retry, pool_connections=2,
                       pool_maxsize=settings.pool_size + 1)
    session = _session(adapter, settings.ca_bundle or True, settings.api_url)
    if settings.client_cert:
        session.cert = settings.client_cert
    return session


def build_server_session(settings: HubSettings) -> requests.Session:
    """The single-user servers' Session: asked once (no retries, no Retry-After waits), with
    requests' default certificate bundle or ``$REQUESTS_CA_BUNDLE`` (the proxy's URL is public;
    ``--ssl-enabled``'s internal CA and client certificate are the hub's, not the servers')."""
    adapter = WatchedAdapter(max_retries=0, pool_connections=2, pool_maxsize=settings.pool_size + 1)
    session = _session(adapter, settings.env_ca_bundle or True, settings.server_url_base)
    # ask for the answer as it is: a compressed one could grow past the cap in one chunk
    session.headers["Accept-Encoding"] = "identity"
    return session


# --- sending and reading ---------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    """A whole answer, read within its deadline and cap."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    reason: str = ""


class Transport:
    """The one place requests are sent (:meth:`send`) and answers read (:meth:`read`)."""

    def __init__(self, settings: HubSettings, policy: RetryPolicy = RetryPolicy(),
                 cancel: Optional[threading.Event] = None) -> None:
        self.timeout = (policy.connect_timeout, settings.read_timeout)
        self.api_base = _prepared_base(settings.api_url)
        self._token = settings.token
        self.secrets = (settings.token,)
        self.hub = build_session(settings, policy, cancel)
        self.servers = build_server_session(settings)
        self._alarms = Alarms()

    def close(self) -> None:
        self.hub.close()
        self.servers.close()
        self._alarms.close()

    # shape: a request's parts, each passed through to requests.Request
    def send(self, session: requests.Session, method: str, url: str, cap: int,
             headers: Optional[Dict[str, str]] = None, params: Optional[Dict[str, Any]] = None,
             json: Any = None) -> Answer:
        """Send one request on ``session`` and read its whole answer (at most ``cap`` bytes).

        The hub's token is added here and only here, and only to a request on the hub's
        Session whose URL is under the API base: ``base + "/"`` as a prefix fixes scheme,
        host, port and path, since a host ends at the first ``/``. Any other request that
        would carry it is refused. Redirects are never followed: a 3xx is an answer.
        """
        request = requests.Request(method, url, headers=headers, params=params, json=json,
                                   auth=_NoNetrc())
        prepared = session.prepare_request(request)
        if "%2E" in url and params is None:
            # segment() writes the dots of "." and ".." names as %2E; requests would decode
            # them back to dots, a dot segment the HTTP stack removes: send the path as written
            prepared.url = url
        if session is self.hub and prepared.url.startswith(self.api_base + "/"):
            prepared.headers["Authorization"] = "token " + self._token
        elif self._token and self._token in str(prepared.headers.get("Authorization", "")):
            raise HubError("%s %s: the hub's token is for the hub's API only" % (method, url))
        path = url.split("?")[0]
        where = "%s %s" % (method, path[len(self.api_base):] if session is self.hub
                           and path.startswith(self.api_base + "/") else path)
        with Deadline(self.timeout[1], self._alarms) as deadline:
            try:
                response = session.send(prepared, timeout=self.timeout, allow_redirects=False,
                                        stream=True)
            except requests.RequestException as exc:
                raise self._failed(where, exc, deadline) from None
            with response:
                if session is self.servers and response.headers.get(
                        "Content-Encoding", "identity").lower() != "identity":
                    # asked for identity: a compressed answer could pass the cap in one chunk
                    raise HubProtocolError("%s: a compressed answer (%s), not asked for"
                                           % (where, response.headers["Content-Encoding"]))
                body = self.read(where, response, cap, deadline)
        return Answer(response.status_code, response.headers, body, response.reason or "")

    def read(self, where: str, response: requests.Response, cap: int,
             deadline: Deadline) -> bytes:
        """The body, in chunks, refused once past ``cap`` bytes (declared or received)."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            raise HubProtocolError("%s: the answer is too large (%s bytes, over %s MiB)"
                                   % (where, declared, cap // 2 ** 20))
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(CHUNK):
                size += len(chunk)
                if size > cap:
                    raise HubProtocolError("%s: the answer is too large (over %s MiB)"
                                           % (where, cap // 2 ** 20))
                chunks.append(chunk)
        except requests.RequestException as exc:
            raise self._failed(where, exc, deadline) from None
        if deadline.expired:  # urllib3 1.26 may return a cut body without an error
            raise self._failed(where, None, deadline)
        return b"".join(chunks)

    def _failed(self, where: str, exc: Optional[Exception], deadline: Deadline) -> HubError:
        if deadline.expired:
            return HubUnavailable("%s: the answer took longer than %ss to arrive"
                                  % (where, deadline.seconds))
        return HubUnavailable("%s: %s" % (where, describe(exc, self.secrets)))


def _prepared_base(url: str) -> str:
    """The base URL as requests writes it (host in IDNA, path quoted), without a trailing
    ``/``; our own paths, already quoted, go after it."""
    try:
        url = requests.Request("GET", url).prepare().url
    except requests.RequestException:
        pass  # every call will fail with this error, as a HubUnavailable
    return url.rstrip("/")


def clip(text: str, secrets: Sequence[str] = (), limit: int = 300) -> str:
    """``text`` without the secrets, then cut to ``limit`` characters: in that order, since a
    cut through a secret would leave a prefix of it that nothing could recognise any more."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text[:limit]


def describe(exc: Optional[BaseException], secrets: Sequence[str] = ()) -> str:
    """A one-line description of a requests error, without the request's headers."""
    reason: Any = exc
    while reason is not None and reason.args and isinstance(reason.args[0], Exception):
        reason = reason.args[0]
    return "%s: %s" % (exc.__class__.__name__, clip(str(reason).replace("\n", " "), secrets))
