"""The listing stage of a pass: every page of ``GET /users``, in order, as parsed users.

The first page is read as soon as the listing is opened (its ``Date`` puts the pass on the
hub's clock before any user is judged), then the pages its ``total`` announces are fetched
several at a time on the pool (a prefetch window), then any pages beyond are followed one by
one (users added meanwhile). A user model that cannot be read is skipped with a WARNING. A
``HubError`` is raised to the caller, which ends the pass with nothing sent; a stop signal
ends the listing between pages (``stats.interrupted``).
"""

from collections import deque
from datetime import datetime
from typing import Deque, Generator, Iterator, List, NamedTuple, Optional, Protocol, Tuple

from idle_culler_daemon.context import PassContext
from idle_culler_daemon.errors import ModelError
from idle_culler_daemon.hub import Page
from idle_culler_daemon.log import get_logger
from idle_culler_daemon.model import User, parse_user

log = get_logger(__name__)

# Users the listing may hold ahead of the page being judged, per worker: 5 pages of 200 at the
# default concurrency. Measured by `make bench` (bench/README.md): at 2 pages of 200 ahead the
# pass took up to 1.16 x its bound, at 10 pages the peak RSS grew by 16 MiB from 1k to 50k users.
PREFETCH_USERS_PER_WORKER = 100


class ListingHub(Protocol):
    """What the listing needs from the hub (``hub.HubClient``, or a fake in tests)."""

    def users_page(self, state: Optional[str], offset: int) -> Page: ...


def states(use_state_filter: bool, cull_users: bool) -> List[Optional[str]]:
    """The listings a pass reads: ``ready`` users, and ``inactive`` ones to delete."""
    if not use_state_filter:
        return [None]  # hub < 1.3: every user, filtered here
    return ["ready"] + (["inactive"] if cull_users else [])


class FirstAnswer(NamedTuple):
    """The answer to the pass's first request: the hub's ``Date`` (``Page.date``) and how long
    the request took on the monotonic clock, for the hub's clock (``clock.sample``)."""

    date: Optional[datetime]
    took_s: float


def open_listing(hub: ListingHub, context: PassContext,
                 cull_users: bool) -> Tuple[FirstAnswer, Iterator[User]]:
    """Read the pass's first page now, and return its answer with every user of every listing,
    parsed, as their page arrives (a generator that starts with that first page).

    The first page is read before any user is judged so that the pass can take ``now`` on the
    hub's clock from its ``Date`` (docs/behaviour.md#the-hubs-clock). A ``HubError`` of that
    first request is raised here.
    """
    listings = states(context.runtime.use_state_filter, cull_users)
    pages = _Pages(hub, context)
    sent = context.runtime.monotonic()
    first = pages.fetch(listings[0], 0)
    took_s = max(0.0, context.runtime.monotonic() - sent)
    return FirstAnswer(first.date, took_s), _users(pages, listings, first, context)


def _users(pages: "_Pages", listings: List[Optional[str]], first: Page,
           context: PassContext) -> Iterator[User]:
    for index, state in enumerate(listings):
        for page in pages.of(state, first if index == 0 else None):
            if context.stopping():
                context.stats.interrupted = True
                return
            for item in page.items:
                user = _parse(item, context)
                if user is not None:
                    yield user


def _parse(item: object, context: PassContext) -> Optional[User]:
    context.stats.users_seen += 1  # the listing runs in one thread
    try:
        return parse_user(item)
    except ModelError as exc:
        context.stats.users_skipped += 1
        log.warning("skip-user", reason="bad-model", error=str(exc),
                    detail="nothing of this user is stopped or deleted in this pass")
        return None


class _Pages:
    """The pages of one listing, in order: the first, the prefetched ones, the rest."""

    def __init__(self, hub: ListingHub, context: PassContext) -> None:
        self._hub = hub
        self._context = context

    def of(self, state: Optional[str], first: Optional[Page] = None) -> Iterator[Page]:
        """The pages of the listing of ``state``; ``first``: its first page, already read."""
        if first is None:
            first = self.fetch(state, 0)
        yield first
        last = first
        if first.next_offset is not None and first.total is not None and first.limit:
            last = yield from self._prefetch(state, first)
        yield from self._follow(state, last.next_offset)

    def _prefetch(self, state: Optional[str], first: Page) -> Generator[Page, None, Page]:
        """Fetch the pages ``total`` announces, several at a time; yield them in order.

        At most ``concurrency`` pages, and at most ``concurrency * PREFETCH_USERS_PER_WORKER``
        users, are asked for ahead of the one being judged, so that the users held in memory
        do not grow with the page size. ``total`` is a hint, not a promise: offsets are taken
        lazily, and once a page says it is the last, no more are asked for. Returns the last
        page read, for ``_follow``.
        """
        runtime = self._context.runtime
        limit = first.limit or 1
        ahead = max(1, min(runtime.concurrency,
                           runtime.concurrency * PREFETCH_USERS_PER_WORKER // limit))
        offsets = iter(range(first.next_offset or 0, first.total or 0, limit))
        window: Deque = deque()
        last, ended = first, False
        while True:
            while not ended and len(window) < ahead:
                offset = next(offsets, None)
                if offset is None:
                    break
                window.append(runtime.pool.submit(self._hub.users_page, state, offset))
            if not window:
                return last
            last = self._context.progress.result(window.popleft())
            yield last
            ended = ended or last.next_offset is None

    def _follow(self, state: Optional[str], offset: Optional[int]) -> Iterator[Page]:
        """Pages past what ``total`` announced (users added while listing), one by one."""
        while offset is not None:
            page = self.fetch(state, offset)
            yield page
            offset = page.next_offset

    def fetch(self, state: Optional[str], offset: int) -> Page:
        page = self._hub.users_page(state, offset)
        self._context.progress.advanced()
        return page
