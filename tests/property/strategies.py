"""Hypothesis strategies for hub data: any JSON value, timestamps (well-formed over the whole
datetime range, near-misses, garbage) and user models that are mostly well-typed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import strategies as st

# Any JSON document (json.loads also yields NaN and infinities, so floats allow them).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)

# Fixed UTC offsets as the hub (or a proxy, or a database) might write them.
offsets = st.builds(lambda minutes: timezone(timedelta(minutes=minutes)),
                    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59))


def _render(moment: datetime, style: int) -> str:
    """Write a time in one of the spellings hubs and their databases produce."""
    if style == 1:
        return moment.replace(tzinfo=None).isoformat() + "Z"
    if style == 2:
        return moment.isoformat(timespec="seconds")
    if style == 3:
        return moment.isoformat(sep=" ")
    return moment.isoformat()


# Any time, and times within two days of the ends of the datetime range, where converting a
# zoned time to UTC leaves the range.
zoned_times = st.one_of(
    st.datetimes(timezones=offsets),
    st.datetimes(min_value=datetime(9999, 12, 30), timezones=offsets),
    st.datetimes(max_value=datetime(1, 1, 2), timezones=offsets),
)

# Timestamp strings: well-formed ones over the whole datetime range (with and without a zone),
# near-misses built from the right alphabet, and text.
timestamp_strings = st.one_of(
    st.builds(_render, st.datetimes(timezones=st.none() | offsets), st.integers(0, 3)),
    st.builds(_render, zoned_times, st.integers(0, 3)),
    st.text(alphabet="0123456789-:T.Z+ W", max_size=32),
    st.text(max_size=16),
)
timestamps = st.one_of(st.none(), timestamp_strings, json_values)

names = st.text(min_size=1, max_size=12)


def maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """A well-typed value most of the time, any JSON value sometimes."""
    return st.one_of(strategy, strategy, strategy, json_values)


server_models = st.fixed_dictionaries({}, optional={
    "name": maybe(st.text(max_size=8)),
    "ready": maybe(st.booleans()),
    "pending": maybe(st.none() | st.sampled_from(["spawn", "stop", "check"])),
    "started": timestamps,
    "last_activity": timestamps,
    "url": maybe(st.none() | st.just("/user/x/")),
    "stopped": maybe(st.booleans()),
})

user_models = st.fixed_dictionaries({"name": maybe(names)}, optional={
    "kind": maybe(st.just("user")),
    "admin": maybe(st.booleans()),
    "groups": maybe(st.lists(st.text(max_size=8), max_size=3)),
    "created": timestamps,
    "last_activity": timestamps,
    "server": maybe(st.none() | st.just("/user/x/")),
    "pending": maybe(st.none() | st.sampled_from(["spawn", "stop"])),
    "servers": maybe(st.none() | st.dictionaries(st.text(max_size=8), maybe(server_models),
                                                 max_size=3)),
})
