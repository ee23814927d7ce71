"""The warnings before a cull and the notices' payloads.

See docs/behaviour.md#webhook-notifications.
"""

from datetime import datetime, timedelta, timezone

from idle_culler_daemon.config import CullSettings, RuleSettings
from idle_culler_daemon.forewarn import (
    GUARD_TRIPPED,
    SERVER_STOP_SOON,
    SERVER_STOPPED,
    USER_DELETE_SOON,
    USER_DELETED,
    Notice,
    Warned,
    judged_notices,
    log_fields,
    payload,
    sentence,
)
from idle_culler_daemon.model import Server, User

T0 = datetime(2026, 12, 3, 13, 0, tzinfo=timezone.utc)
HOUR = 3600
# --timeout=1h --warn-before=15m, a pass every 5 minutes
SETTINGS = CullSettings(timeout=HOUR, warn_before=900)


def server(name="", active_at=T0, started=None):
    return Server(name=name, ready=True, started=started or active_at, last_activity=active_at)


def alice(*servers, **fields):
    return User(name="alice", created=T0 - timedelta(days=1), last_activity=T0,
                servers=tuple(servers), **fields)


def one_pass(user, now, warned, settings=SETTINGS):
    """What a pass does with the warnings of one user: sweep, then claim the new ones."""
    due = judged_notices(user, now, settings)
    warned.sweep(due)
    return [notice for notice in due if warned.claim(notice)]


def test_warned_server_is_warned_once_per_idle_stretch_over_several_passes():
    warned = Warned()
    user = alice(server(active_at=T0))
    sent = [one_pass(user, T0 + timedelta(minutes=minute), warned)
            for minute in range(0, 60, 5)]  # 12 passes, the stop due at 14:00
    firsts = [minute * 5 for minute, notices in enumerate(sent) if notices]
    assert firsts == [45]  # the first pass within 15 minutes of the timeout, and only that one
    (notice,) = sent[9]
    assert notice.event == SERVER_STOP_SOON and notice.reason == "idle"
    assert notice.at == T0 + timedelta(hours=1) and notice.idle_s == 45 * 60


def test_warned_server_used_again_and_idle_again_is_warned_again():
    warned = Warned()
    assert one_pass(alice(server(active_at=T0)), T0 + timedelta(minutes=50), warned)
    assert not one_pass(alice(server(active_at=T0)), T0 + timedelta(minutes=55), warned)
    used = T0 + timedelta(minutes=57)  # used before the stop: a new stretch begins
    assert not one_pass(alice(server(active_at=used)), used + timedelta(minutes=5), warned)
    (again,) = one_pass(alice(server(active_at=used)), used + timedelta(minutes=46), warned)
    assert again.at == used + timedelta(hours=1)
    assert not one_pass(alice(server(active_at=used)), used + timedelta(minutes=51), warned)


def test_warned_a_restart_forgets_so_a_warning_is_sent_again_never_skipped():
    before, after = Warned(), Warned()
    assert one_pass(alice(server()), T0 + timedelta(minutes=50), before)
    assert one_pass(alice(server()), T0 + timedelta(minutes=55), after)


def test_warned_forgets_servers_no_longer_within_their_warning_time():
    warned = Warned()
    one_pass(alice(server(), server("lab")), T0 + timedelta(minutes=50), warned)
    assert len(warned) == 2
    one_pass(alice(server("lab")), T0 + timedelta(minutes=50), warned)  # "" was stopped
    assert len(warned) == 1


def test_warnings_none_without_warn_before_nor_for_kept_or_due_servers():
    assert judged_notices(alice(server()), T0 + timedelta(minutes=50),
                          CullSettings(timeout=HOUR)) == []
    excluded = CullSettings(timeout=HOUR, warn_before=900,
                            rules=(RuleSettings("staff", users=("alice",), cull=False),))
    assert judged_notices(alice(server()), T0 + timedelta(minutes=50), excluded) == []
    # past the timeout it is stopped in this pass: no warning, the stop's notice follows
    assert judged_notices(alice(server()), T0 + timedelta(minutes=61), SETTINGS) == []
    pending = Server(name="", ready=False, pending="spawn", started=T0, last_activity=T0)
    assert judged_notices(alice(pending), T0 + timedelta(minutes=50), SETTINGS) == []


def test_warnings_max_age_warns_before_the_stop_of_an_active_server():
    settings = CullSettings(timeout=HOUR, max_age=8 * HOUR, warn_before=900)
    started = T0 - timedelta(hours=8) + timedelta(minutes=10)  # 8 h old at 13:10
    user = alice(server(active_at=T0, started=started))
    (notice,) = judged_notices(user, T0, settings)
    assert (notice.reason, notice.at, notice.stretch) == ("max-age", T0 + timedelta(minutes=10),
                                                          started)
    assert sentence(notice, T0) == ("The server of alice will be stopped at 13:10 UTC, when "
                                    "it reaches its maximum age.")
    # activity does not begin a new stretch of a maximum age: warned once
    warned = Warned()
    assert one_pass(user, T0, warned, settings)
    busier = alice(server(active_at=T0 + timedelta(minutes=5), started=started))
    assert not one_pass(busier, T0 + timedelta(minutes=5), warned, settings)


def test_warnings_max_age_spares_admins_as_the_stop_would():
    settings = CullSettings(timeout=HOUR, max_age=8 * HOUR, warn_before=900,
                            cull_admin_users=False)
    started = T0 - timedelta(hours=8) + timedelta(minutes=10)
    assert judged_notices(alice(server(started=started), admin=True), T0, settings) == []
    assert judged_notices(alice(server(started=started), admin=False), T0, settings)


def test_warnings_come_at_most_half_the_limit_ahead_so_a_server_in_use_is_not_warned_each_pass():
    settings = CullSettings(timeout=HOUR, warn_before=2 * HOUR)
    warned = Warned()
    for minute in range(0, 30, 5):  # used at every pass: never idle for half the timeout
        used = T0 + timedelta(minutes=minute)
        assert not one_pass(alice(server(active_at=used)), used + timedelta(minutes=4), warned,
                            settings)
    (notice,) = one_pass(alice(server()), T0 + timedelta(minutes=30), warned, settings)
    assert notice.at == T0 + timedelta(hours=1)


def test_warnings_a_rules_timeout_decides_when():
    settings = CullSettings(timeout=HOUR, warn_before=900,
                            rules=(RuleSettings("gpu", server_names=("gpu-*",), timeout=1800),))
    user = alice(server("gpu-1"), server())
    (notice,) = judged_notices(user, T0 + timedelta(minutes=20), settings)
    assert (notice.server, notice.rule, notice.at) == ("gpu-1", "gpu",
                                                       T0 + timedelta(minutes=30))


def test_warnings_user_delete_soon_with_cull_users():
    settings = CullSettings(timeout=HOUR, cull_users=True, warn_before=86400,
                            rules=(RuleSettings("guests", users=("g-*",),
                                                user_timeout=2 * 86400),))
    guest = User(name="g-1", created=T0 - timedelta(days=3), last_activity=T0)
    now = T0 + timedelta(days=1, hours=1)  # a day before it is due, the day before
    warned = Warned()
    (notice,) = one_pass(guest, now, warned, settings)
    assert (notice.event, notice.server, notice.reason) == (USER_DELETE_SOON, None,
                                                            "inactive-user")
    assert notice.at == T0 + timedelta(days=2)
    assert sentence(notice, now) == ("The user g-1 will be deleted at 13:00 UTC on 2026-12-05 "
                                     "unless they are active before then.")
    assert not one_pass(guest, now + timedelta(minutes=5), warned, settings)
    # a user with a running server that is not due is not about to be deleted
    busy = User(name="g-2", created=T0, last_activity=T0, servers=(server(active_at=now),))
    assert judged_notices(busy, now, settings) == []


def test_payload_has_every_field_and_the_sentence():
    notice = Notice(SERVER_STOP_SOON, "alice", "", "idle", 3300, "default",
                    at=datetime(2026, 12, 3, 14, 5, 30, tzinfo=timezone.utc), stretch=T0)
    body = payload(notice, datetime(2026, 12, 3, 13, 50, tzinfo=timezone.utc),
                   "https://hub.example.org")
    assert body == {
        "event": "server-stop-soon", "user": "alice", "server": "", "reason": "idle",
        "idle_s": 3300, "rule": "default", "hub": "https://hub.example.org",
        "time": "2026-12-03T13:50:00Z", "at": "2026-12-03T14:05:30Z",
        "text": "The server of alice will be stopped at 14:05 UTC unless it is used before "
                "then."}


def test_payload_of_the_actions_and_the_guard():
    now = T0
    stopped = payload(Notice(SERVER_STOPPED, "bob", "lab", "idle", 7260, "default",
                             result="stopped"), now, "h")
    assert stopped["result"] == "stopped" and "at" not in stopped
    assert stopped["text"] == "The server lab of bob was stopped after 2h01m without activity."
    pending = payload(Notice(SERVER_STOPPED, "bob", "", "max-age", 60, "gpu",
                             result="pending"), now, "h")
    assert pending["text"] == "The server of bob is being stopped: it reached its maximum age."
    aged = payload(Notice(USER_DELETED, "dora", None, "max-age", 5, "guests"), now, "h")
    assert aged["text"] == "The user dora was deleted: the account reached its maximum age."
    deleted = payload(Notice(USER_DELETED, "carl", None, "inactive-user", 30 * 86400,
                             "default"), now, "h")
    assert deleted["server"] is None and "result" not in deleted
    assert deleted["text"] == "The user carl was deleted after 30d00h without activity."
    guard = payload(Notice(GUARD_TRIPPED, counts=(("planned", 90), ("running", 100),
                                                  ("limit", 0.5))), now, "h")
    assert (guard["planned"], guard["running"], guard["limit"]) == (90, 100, 0.5)
    assert guard["user"] is None and "90 of 100" in guard["text"]


def test_sentence_names_cannot_ping_a_channel_or_start_a_line():
    notice = Notice(SERVER_STOP_SOON, "<!channel>", "x\ny", "idle", 0, "default", at=T0)
    text = sentence(notice, T0)
    assert "<" not in text and ">" not in text and "\n" not in text
    assert text.startswith("The server x\\u000ay of &lt;!channel&gt; will be stopped")
    assert payload(notice, T0, "h")["user"] == "<!channel>"  # the field keeps the name


def test_log_fields_name_the_default_server_as_the_log_does():
    fields = log_fields(Notice(SERVER_STOP_SOON, "alice", "", "idle", 10, "default", at=T0))
    assert fields == {"user": "alice", "server": "-", "reason": "idle", "idle_s": 10,
                      "rule": "default", "at": "2026-12-03T13:00:00Z"}
