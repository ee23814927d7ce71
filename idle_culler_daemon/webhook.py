"""Notifications over HTTP: each notice POSTed as one JSON object by a single sender thread.

A pass hands notices to :meth:`Webhook.send`, which never blocks: it puts the payload on a
bounded queue (a full queue drops the newest, counted) and returns. One sender thread POSTs
them in order through a ``requests`` Session of its own, so a webhook that is slow, down or
answering errors never slows a pass, the watchdog or a stop. The Session carries no
credentials of the hub (it is not the hub's: no auth, no cookies kept, no ``.netrc``), follows
no redirect, and gives each POST the request timeout; connection errors, 429 and 5xx are
retried a few times with backoff by urllib3's ``Retry``, then the notice is dropped and
counted as failed. The URL is a secret: no message here names it (the log filter redacts it
besides). On SIGTERM :meth:`Webhook.close` lets the queue drain for a bounded time and counts
what remains as dropped (docs/behaviour.md#webhook-notifications).
"""

import threading
from collections import Counter, deque
from datetime import datetime, timezone
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Callable, Deque, Dict, Optional, Tuple

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from idle_culler_daemon import __version__
from idle_culler_daemon.config import NotifySettings
from idle_culler_daemon.forewarn import Notice, Warned, payload
from idle_culler_daemon.log import get_logger

log = get_logger(__name__)

USER_AGENT = "jupyterhub-idle-culler-daemon/%s" % __version__
CONNECT_TIMEOUT_S = 3.05  # as the hub's: just above the 3 s step of TCP's connection retries
QUEUE_SIZE = 1000         # notices waiting; a pass that stops more than this drops the rest
RETRIES = 3               # after the first attempt: 4 in all, waits 0.5, 1, 2 s between
BACKOFF_S = 0.5
RETRY_STATUSES = (429, 500, 502, 503, 504)
#: How long a stopping culler lets the queue drain: far inside the unit's TimeoutStopSec.
DRAIN_S = 5.0


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def build_session(settings: NotifySettings, retries: int = RETRIES,
                  backoff_s: float = BACKOFF_S) -> requests.Session:
    """The webhook's own Session, never the hub's: no auth, cookies refused, no ``.netrc``.

    POST is not idempotent, so urllib3 retries it only when told to (``allowed_methods``); a
    notice sent twice is better than one lost. ``Retry-After`` is not obeyed: a rate limit
    asking for an hour would hold the one sender thread for that hour.
    """
    retry = Retry(total=retries, connect=retries, read=retries, status=retries, other=0,
                  redirect=0, status_forcelist=RETRY_STATUSES,
                  allowed_methods=frozenset({"POST"}), backoff_factor=backoff_s,
                  raise_on_status=False, respect_retry_after_header=False)
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=1))
    session.mount("https://", HTTPAdapter(max_retries=retry, pool_connections=1,
                                          pool_maxsize=1))
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # keep no cookie
    session.headers["User-Agent"] = USER_AGENT
    if settings.header:
        session.headers[settings.header[0]] = settings.header[1]
    # Proxies and CA bundle from the environment, read once (as requests would read them for
    # each request); then no more environment, so a ~/.netrc cannot add credentials.
    found = session.merge_environment_settings(settings.url, {}, None, True, None)
    session.proxies, session.verify = found["proxies"], found["verify"]
    session.trust_env = False
    return session


def describe(exc: BaseException) -> str:
    """An exception as a short text that cannot hold the URL: its class names only (the
    messages of requests and urllib3 repeat the URL's path, which may carry the key)."""
    reason = exc.args[0] if exc.args else None
    inner = getattr(reason, "reason", None)  # requests wraps urllib3's MaxRetryError
    name = type(exc).__name__
    if inner is not None:
        return "%s (%s)" % (name, type(inner).__name__)
    return name


class Webhook:
    """The queue, the sender thread and the counters of one ``--notify-url``.

    Counters, read with :meth:`counts`: ``sent`` per event, ``failed`` (no 2xx after the
    retries, or a redirect), ``dropped`` (the queue was full, or the culler stopped first).
    """

    def __init__(self, settings: NotifySettings, *, queue_size: int = QUEUE_SIZE,
                 retries: int = RETRIES, backoff_s: float = BACKOFF_S,
                 clock: Callable[[], datetime] = _utc_now) -> None:
        self._settings = settings
        self._size = queue_size
        self._clock = clock
        self._timeout = (CONNECT_TIMEOUT_S, settings.read_timeout)
        self._session = build_session(settings, retries, backoff_s)
        self._cond = threading.Condition()
        self._queue: Deque[Dict[str, Any]] = deque()
        self._closing = self._abandoned = False
        self._in_flight = 0
        self.sent: Counter = Counter()
        self.failed = 0
        self.dropped = 0
        self._last_error: Optional[str] = None
        self._reported = (0, 0)
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    @property
    def settings(self) -> NotifySettings:
        return self._settings

    def send(self, notice: Notice) -> bool:
        """Queue ``notice`` for the sender; False (counted as dropped) when the queue is
        full or the webhook is closing. Never blocks on the network."""
        body = payload(notice, self._clock(), self._settings.hub)
        with self._cond:
            if self._closing or len(self._queue) >= self._size:
                self.dropped += 1
                return False
            self._queue.append(body)
            self._cond.notify()
            return True

    def counts(self) -> Tuple[Dict[str, int], int, int]:
        """``(sent per event, failed, dropped)`` so far, for the metrics."""
        with self._cond:
            return dict(self.sent), self.failed, self.dropped

    def idle(self, timeout_s: float) -> bool:
        """Wait until every queued notice was tried (for tests); False at the timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._in_flight,
                                       timeout_s)

    def report(self) -> None:
        """One WARNING ``webhook-failed`` when notices failed or were dropped since the last
        report; called once per pass, so the log gets one line per pass at most."""
        with self._cond:
            failed, dropped = self.failed, self.dropped
            new_failed, new_dropped = failed - self._reported[0], dropped - self._reported[1]
            self._reported = (failed, dropped)
            error = self._last_error
        if new_failed or new_dropped:
            log.warning("webhook-failed", failed=new_failed, dropped=new_dropped,
                        error=error or "-", detail="notifications not delivered since the "
                        "last pass; the culling goes on")

    def close(self, timeout_s: float = DRAIN_S) -> None:
        """Take no more notices, let the sender drain the queue for at most ``timeout_s``,
        then drop (and count) what is left, the POST in flight included."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(max(0.0, timeout_s))
        with self._cond:
            if self._thread.is_alive():
                self.dropped += len(self._queue) + self._in_flight
                self._queue.clear()
                self._abandoned = True  # the POST in flight is no longer counted when it ends
        self.report()
        if not self._thread.is_alive():
            self._session.close()

    # -- the sender thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closing)
                if not self._queue:
                    return
                body = self._queue.popleft()
                self._in_flight = 1
            error = self._post(body)
            with self._cond:
                self._in_flight = 0
                if not self._abandoned:
                    if error is None:
                        self.sent[body["event"]] += 1
                    else:
                        self.failed += 1
                        self._last_error = error
                self._cond.notify_all()

    def _post(self, body: Dict[str, Any]) -> Optional[str]:
        """POST one payload; None when the receiver took it (2xx), else why not."""
        try:
            # stream: the answer's body is never read, however long a receiver makes it
            response = self._session.post(self._settings.url, json=body, timeout=self._timeout,
                                          allow_redirects=False, stream=True)
            response.close()
        except requests.RequestException as exc:
            return describe(exc)
        except Exception as exc:  # a bug must not end the sender: the next notice still goes
            log.exception("webhook-failed", error=type(exc).__name__, detail="a bug")
            return type(exc).__name__
        if 200 <= response.status_code < 300:
            return None
        return "HTTP %d" % response.status_code


class Notifications:
    """What lives across passes for notifications: the stretches already warned about
    (``forewarned``), the webhook of the running ``--notify-url`` (None: none), and the counts
    of the webhooks a reload replaced, so that :meth:`counts` are totals since start."""

    def __init__(self) -> None:
        self.forewarned = Warned()
        self.webhook: Optional[Webhook] = None
        self._closed: Tuple[Counter, int, int] = (Counter(), 0, 0)

    def swap(self, settings: Optional[NotifySettings]) -> None:
        """Keep the running webhook while its settings stay the same; otherwise close it (its
        queue drains for ``DRAIN_S`` at most) and start the new one."""
        if self.webhook is not None and self.webhook.settings == settings:
            return
        self.close()
        self.webhook = Webhook(settings) if settings is not None else None

    def close(self, timeout_s: Optional[float] = None) -> None:
        """Close the webhook, bounded (``DRAIN_S`` unless told), keeping its counts."""
        if self.webhook is None:
            return
        self.webhook.close(DRAIN_S if timeout_s is None else timeout_s)
        sent, failed, dropped = self.webhook.counts()
        total = self._closed
        self._closed = (total[0] + Counter(sent), total[1] + failed, total[2] + dropped)
        self.webhook = None

    def report(self) -> None:
        """After a pass: one WARNING at most about notices that failed (``Webhook.report``)."""
        if self.webhook is not None:
            self.webhook.report()

    def counts(self) -> Tuple[Dict[str, int], int, int]:
        """``(sent per event, failed, dropped)`` since start, across reloads that replaced the
        webhook: for ``notifications_sent_total{event}``, ``notifications_failed_total`` and
        ``notifications_dropped_total``."""
        sent, failed, dropped = self._closed
        if self.webhook is not None:
            now_sent, now_failed, now_dropped = self.webhook.counts()
            return dict(sent + Counter(now_sent)), failed + now_failed, dropped + now_dropped
        return dict(sent), failed, dropped
