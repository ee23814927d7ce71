"""The hub's clock: how far it is from the culler's, and when to say so.

Idle times are the hub's timestamps (``last_activity``, ``started``, ``created``) subtracted
from ``now``. Measured on the culler's clock, a culler whose clock is hours off stops active
servers, or keeps idle ones, and nothing in the log says why. The hub tells its own time on
every answer, in the HTTP ``Date`` header, so a pass takes ``now`` on the hub's clock: the
culler's now plus the offset measured here (docs/behaviour.md#the-hubs-clock).

Pure: no clock is read here. The pass gives the samples (when, on the culler's clock, it asked
and was answered, and the answer's ``Date``) and logs the :class:`Notice` the
:class:`ClockWatch` returns.

The arithmetic, for one answer: the hub wrote its ``Date`` some time between the moment the
request was sent and the moment the answer arrived (on the culler's clock: the sample's
``culler_time`` is the middle of the two), and the header is truncated to the whole second,
so the hub's time was ``Date`` plus 0 to 1 s. The best estimate of the offset is therefore
``Date + 0.5 s - culler_time``, right to within half a second plus half the round trip. Of
several answers the median is taken (one slow answer does not move it), rounded to the whole
second (the header has no finer resolution); an offset under 2 s is no offset at all.
"""

from datetime import datetime, timedelta
from typing import NamedTuple, Optional, Sequence

#: The ``Date`` header is truncated to the second: the hub's time was half a second later, on
#: average.
HALF_SECOND = timedelta(seconds=0.5)
#: Below this, the estimate cannot tell an offset from the header's resolution and the round
#: trip: no offset.
NO_OFFSET_BELOW = timedelta(seconds=2)
#: An offset this large is worth a WARNING; a change this large is worth another.
WARN_FROM = timedelta(seconds=30)
ZERO = timedelta(0)


class Sample(NamedTuple):
    """One answer of the hub: the culler's time when it was given, and its ``Date`` header.

    ``culler_time`` is the middle of the request (between sending and the answer's arrival),
    on the culler's clock; ``hub_date`` is the answer's ``Date`` (aware UTC), None when the
    answer had none that could be read.
    """

    culler_time: datetime
    hub_date: Optional[datetime]


def sample(sent: datetime, received: datetime, hub_date: Optional[datetime]) -> Sample:
    """The sample of a request sent at ``sent`` and answered at ``received`` (culler's clock)."""
    return Sample(sent + (received - sent) / 2, hub_date)


def hub_offset(samples: Sequence[Sample]) -> Optional[timedelta]:
    """The hub's clock minus the culler's, in whole seconds; None when no sample has a Date.

    The median of each dated sample's estimate (``Date + 0.5 s - culler_time``); an offset
    under 2 s either way is zero.
    """
    estimates = sorted(one.hub_date + HALF_SECOND - one.culler_time
                       for one in samples if one.hub_date is not None)
    if not estimates:
        return None
    middle = len(estimates) // 2
    median = estimates[middle] if len(estimates) % 2 else \
        (estimates[middle - 1] + estimates[middle]) / 2
    if abs(median) < NO_OFFSET_BELOW:
        return ZERO
    return timedelta(seconds=round(median.total_seconds()))


class Notice(NamedTuple):
    """What the pass should log about the hub's clock.

    ``kind``: ``offset`` (a WARNING: the hub's clock is ``offset_s`` seconds from the
    culler's), ``in-step`` (INFO: the clocks agree, to within 30 s; ``offset_s`` is the figure
    used), or ``unknown`` (the answer had no usable ``Date``: the culler's own clock is used).
    """

    kind: str
    offset_s: Optional[int] = None


class ClockWatch:
    """Decides, pass after pass, when the hub's clock is worth a line of the log.

    Kept by the daemon for its whole life and given each pass's offset: a WARNING when the
    offset is 30 s or more, the first time and then only when it has moved by 30 s or more
    since the last one said; an INFO with the figure the first time the clocks agree (so the
    start of the log always shows it), and again when they agree after a WARNING; a missing
    ``Date`` is said once.
    """

    def __init__(self) -> None:
        self._said: Optional[timedelta] = None  # the offset the last line reported
        self._said_unknown = False

    def observe(self, offset: Optional[timedelta]) -> Optional[Notice]:
        """The line to log for this pass's ``offset`` (None: no usable Date), if any."""
        if offset is None:
            if self._said_unknown:
                return None
            self._said_unknown = True
            return Notice("unknown")
        seconds = int(offset.total_seconds())
        if abs(offset) >= WARN_FROM:
            if self._said is not None and abs(offset - self._said) < WARN_FROM:
                return None
            self._said = offset
            return Notice("offset", seconds)
        if self._said is not None and (abs(self._said) < WARN_FROM
                                       or abs(offset - self._said) < WARN_FROM):
            return None
        self._said = offset
        return Notice("in-step", seconds)
