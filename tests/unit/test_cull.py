"""A whole pass against the in-memory MemoryHub: list first, then act; outcomes; isolation."""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from idle_culler_daemon.config import CullSettings, RuleSettings
from idle_culler_daemon.cull import Runtime, run_pass
from idle_culler_daemon.errors import (
    HubAuthError,
    HubHTTPError,
    HubProtocolError,
    HubUnavailable,
)
from idle_culler_daemon.hub import DeleteResult, StopResult
from tests.fakes import NOW, InlineExecutor, MemoryHub, server_model, stamp, user_model

SETTINGS = CullSettings(timeout=600)
USERS = CullSettings(timeout=600, cull_users=True)


def run(hub, settings=SETTINGS, **runtime):
    return run_pass(hub, settings, NOW, Runtime(InlineExecutor(), 4, **runtime))


def test_run_pass_stops_idle_and_keeps_active_servers():
    hub = MemoryHub([user_model("idle", {"": server_model(900)}),
                   user_model("busy", {"": server_model(30)})])
    stats = run(hub)
    assert hub.of_kind("stop") == [("stop", "idle", "", False)]
    assert (stats.users_seen, stats.stopped, stats.ok) == (2, 1, True)


def test_run_pass_sends_no_delete_before_the_last_page():
    users = [user_model("u%03d" % i, {"": server_model(900 if i % 2 else 5)}) for i in range(120)]
    hub = MemoryHub(users, page_size=50)
    run(hub)
    kinds = [call[0] for call in hub.calls]
    last_list = max(i for i, kind in enumerate(kinds) if kind == "list")
    first_stop = kinds.index("stop")
    assert last_list < first_stop and len(hub.of_kind("stop")) == 60


def test_run_pass_removes_named_servers_only_when_asked():
    model = user_model("ann", {"lab": server_model(900, name="lab")})
    hub = MemoryHub([model])
    run(hub)
    hub2 = MemoryHub([model])
    run(hub2, CullSettings(timeout=600, remove_named_servers=True))
    assert hub.of_kind("stop") == [("stop", "ann", "lab", False)]
    assert hub2.of_kind("stop") == [("stop", "ann", "lab", True)]


def test_run_pass_does_not_delete_user_whose_server_answered_202():
    hub = MemoryHub([user_model("ann", {"": server_model(900)}, idle_s=900)],
                  stop_results={("ann", ""): StopResult.PENDING})
    stats = run(hub, USERS)
    assert hub.of_kind("delete") == [] and stats.pending == 1 and stats.stopped == 0


def test_run_pass_treats_404_as_stopped_and_deletes_the_user():
    hub = MemoryHub([user_model("ann", {"": server_model(900)}, idle_s=900)],
                  stop_results={("ann", ""): StopResult.GONE})
    stats = run(hub, USERS)
    assert hub.of_kind("delete") == [("delete", "ann")] and stats.deleted == 1


def test_run_pass_deletes_user_judged_on_the_model_read_before_the_stops():
    # The hub bumps last_activity when it stops a server; the verdict must not depend on it.
    hub = MemoryHub([user_model("ann", {"": server_model(900)}, idle_s=900)])
    stats = run(hub, USERS)
    assert [c[0] for c in hub.calls if c[0] != "list"] == ["stop", "delete"]
    assert stats.deleted == 1


def test_run_pass_deletes_inactive_users_from_the_second_listing():
    hub = MemoryHub([user_model("never", None, idle_s=None, created_s=7200),
                   user_model("fresh", None, idle_s=None, created_s=60)])
    stats = run(hub, USERS)
    assert ("list", "inactive", 0) in hub.calls
    assert hub.of_kind("delete") == [("delete", "never")] and stats.deleted == 1


def test_run_pass_keeps_user_with_an_active_second_server():
    hub = MemoryHub([user_model("ann", {"": server_model(900), "lab": server_model(5, name="lab")},
                              idle_s=900)])
    run(hub, USERS)
    assert hub.of_kind("stop") == [("stop", "ann", "", False)] and hub.of_kind("delete") == []


def test_run_pass_400_on_delete_means_try_again_next_pass():
    hub = MemoryHub([user_model("ann", None, idle_s=900)],
                    delete_results={"ann": DeleteResult.BUSY})
    stats = run(hub, USERS)
    assert hub.of_kind("delete") == [("delete", "ann")]  # sent, and answered 400
    assert stats.deleted == 0 and stats.delete_failed == 0 and stats.ok


def test_run_pass_skips_a_bad_user_model_and_goes_on(caplog):
    bad = user_model("bad", {"": server_model(900)})
    bad["servers"][""]["last_activity"] = "not-a-date"
    hub = MemoryHub([bad, user_model("idle", {"": server_model(900)})])
    with caplog.at_level(logging.WARNING):
        stats = run(hub)
    assert hub.of_kind("stop") == [("stop", "idle", "", False)]
    assert stats.users_skipped == 1 and "skip-user" in caplog.text


def test_run_pass_isolates_a_failing_stop():
    hub = MemoryHub([user_model("a", {"": server_model(900)}),
                   user_model("b", {"": server_model(900)})],
                  stop_results={("a", ""): HubUnavailable("DELETE: 500", 500)})
    stats = run(hub)
    assert stats.failed == 1 and stats.stopped == 1 and not stats.ok


@pytest.mark.parametrize("workers", [1, 3])
def test_run_pass_an_unexpected_error_of_one_call_fails_only_that_user(caplog, workers):
    # Whatever a hub call raises (here not even a HubError) is a failure of that user, logged
    # with its traceback; every other user's job runs and the pass ends normally.
    hub = MemoryHub([user_model(name, {"": server_model(900)}) for name in "abcde"],
                    stop_results={("b", ""): RuntimeError("a bug in b's stop")})
    with caplog.at_level(logging.ERROR), ThreadPoolExecutor(max_workers=workers) as executor:
        stats = run_pass(hub, SETTINGS, NOW, Runtime(executor, workers, tick_s=0.01))
    assert (stats.stopped, stats.failed, stats.first_failure) == (4, 1, "b")
    assert "stop-failed user=b" in caplog.text and "a bug in b's stop" in caplog.text


@pytest.mark.parametrize("workers", [1, 3])
def test_run_pass_a_job_that_raises_lets_the_others_run_then_raises(workers):
    # Jobs never raise (every failure is an outcome); if one did, it would be a bug: here the
    # hub answers b's stop with something that is no StopResult. The other users' jobs still
    # run, and the bug comes out of the pass once every job has ended.
    hub = MemoryHub([user_model(name, {"": server_model(900)}) for name in "abcde"],
                    stop_results={("b", ""): "not a StopResult"})
    with ThreadPoolExecutor(max_workers=workers) as executor:
        with pytest.raises(AttributeError):
            run_pass(hub, SETTINGS, NOW, Runtime(executor, workers, tick_s=0.01))
    assert sorted(user for _, user, _, _ in hub.of_kind("stop")) == ["a", "b", "c", "d", "e"]


def test_run_pass_stops_sending_a_refused_kind_of_request(caplog):
    users = [user_model("u%d" % i, {"": server_model(900)}) for i in range(5)]
    hub = MemoryHub(users, stop_results={("u%d" % i, ""): HubAuthError("403 requires "
                                                                    "delete:servers", 403)
                                       for i in range(5)})
    with caplog.at_level(logging.ERROR):
        stats = run(hub)
    assert len(hub.of_kind("stop")) == 1 and stats.failed == 5
    assert caplog.text.count("stop-refused") == 1 and "delete:servers" in caplog.text
    assert stats.auth_error


def test_run_pass_listing_failure_stops_nothing():
    class Broken(MemoryHub):
        def users_page(self, state, offset):
            if offset:
                raise HubUnavailable("GET /users: 503", 503)
            return super().users_page(state, offset)

    hub = Broken([user_model("u%03d" % i, {"": server_model(900)}) for i in range(80)])
    stats = run(hub)
    assert hub.of_kind("stop") == [] and stats.listing_error and not stats.ok


def test_run_pass_dry_run_sends_nothing_and_reports_rows():
    hub = MemoryHub([user_model("ann", {"": server_model(900)}, idle_s=900)])
    stats = run(hub, USERS, dry_run=True)
    assert hub.of_kind("stop") == [] and hub.of_kind("delete") == []
    assert [(row.action, row.user, row.verdict.reason) for row in stats.plan] == [
        ("stop", "ann", "idle"), ("delete", "ann", "idle")]


def test_run_pass_duplicate_user_is_stopped_once_and_only_if_both_agree():
    idle = user_model("ann", {"": server_model(900)})
    active = user_model("ann", {"": server_model(5)})
    hub = MemoryHub([idle, idle])
    run(hub)
    assert hub.of_kind("stop") == [("stop", "ann", "", False)]
    hub = MemoryHub([idle, active])
    run(hub)
    assert hub.of_kind("stop") == []


def test_run_pass_without_state_filter_lists_everything_once():
    hub = MemoryHub([user_model("ann", {"": server_model(900)}, idle_s=900),
                   user_model("bob", None, idle_s=900)])
    run(hub, USERS, use_state_filter=False)
    assert [c for c in hub.calls if c[0] == "list"] == [("list", None, 0)]
    assert sorted(hub.of_kind("delete")) == [("delete", "ann"), ("delete", "bob")]


def test_run_pass_stops_submitting_when_asked_to_stop():
    stop = threading.Event()

    class StoppingHub(MemoryHub):
        def stop_server(self, user, server, remove):
            if len(self.of_kind("stop")) == 2:
                stop.set()  # SIGTERM during the third stop
            return super().stop_server(user, server, remove)

    hub = StoppingHub([user_model("u%d" % i, {"": server_model(900)}) for i in range(10)])
    stats = run(hub, stop=stop)
    assert len(hub.of_kind("stop")) == 3 and stats.interrupted and not stats.ok


def test_run_pass_stop_signal_between_pages_ends_the_listing_and_sends_nothing():
    stop = threading.Event()

    class StoppingHub(MemoryHub):
        def users_page(self, state, offset):
            stop.set()
            return super().users_page(state, offset)

    hub = StoppingHub([user_model("u%03d" % i, {"": server_model(900)}) for i in range(120)])
    stats = run(hub, CullSettings(timeout=600, max_stop_fraction=0.1), stop=stop)
    assert hub.of_kind("stop") == [] and stats.interrupted
    assert len(hub.of_kind("list")) < 3
    assert stats.guard_tripped is None  # a partial plan is not judged by the guard either


def test_run_pass_with_real_threads_counts_everything():
    users = [user_model("u%03d" % i, {"": server_model(900)}) for i in range(200)]
    hub = MemoryHub(users)
    with ThreadPoolExecutor(max_workers=8) as executor:
        stats = run_pass(hub, SETTINGS, NOW, Runtime(executor, 8))
    assert stats.stopped == 200 and len(hub.of_kind("stop")) == 200


def test_run_pass_heartbeats_only_while_requests_finish():
    beats = []
    hub = MemoryHub([user_model("u%d" % i, {"": server_model(900)}) for i in range(3)])
    run(hub, heartbeat=lambda: beats.append(1))
    assert beats  # pages and jobs finished: the pass made progress


def test_run_pass_stops_heartbeats_while_no_request_finishes_for_the_stall_limit():
    # A stop hangs; the pass waits on it with ticks of a manual clock (one second per look).
    # It heartbeats until stall_s has passed since the last finished request, then not at all
    # (systemd's watchdog must see a stuck pass), and again once the stop finishes.
    release = threading.Event()
    clock = {"now": 0.0}
    beats = []

    def monotonic():
        clock["now"] += 1.0
        if clock["now"] >= 40:
            release.set()  # the hung request ends at t=40
        return clock["now"]

    class HangingHub(MemoryHub):
        def stop_server(self, user, server, remove):
            assert release.wait(10), "the test never released the stop"
            return super().stop_server(user, server, remove)

    hub = HangingHub([user_model("ann", {"": server_model(900)})])
    with ThreadPoolExecutor(max_workers=1) as executor:
        stats = run_pass(hub, SETTINGS, NOW, Runtime(
            executor, 1, heartbeat=lambda: beats.append(clock["now"]), tick_s=0.001,
            stall_s=10, monotonic=monotonic))
    assert stats.stopped == 1
    assert beats[0] < 5 and any(5 < t < 14 for t in beats)  # while waiting, within the limit
    assert not [t for t in beats if 15 <= t < 40]  # stalled: silence
    assert beats[-1] >= 40  # the stop finished: progress again


def test_run_pass_sees_a_user_listed_twice_as_a_duplicate_at_any_size():
    # 20 000 users, each listed twice with disagreeing verdicts: every duplicate is seen
    # (a plain set: no false positives or negatives), so nothing is stopped.
    idle = [user_model("u%05d" % i, {"": server_model(900)}) for i in range(20000)]
    active = [user_model("u%05d" % i, {"": server_model(5)}) for i in range(20000)]
    hub = MemoryHub(idle + active, page_size=200)
    stats = run(hub)
    assert stats.users_seen == 40000 and hub.of_kind("stop") == []


# --- --check-kernels: a second look before a stop (docs/behaviour.md#kernel-checks) ---

CHECKS = CullSettings(timeout=600, cull_users=True, check_kernels=True)


def status(own_idle_s, kernels):
    return {"started": stamp(7200), "last_activity": stamp(own_idle_s), "kernels": kernels,
            "connections": 0}


def kernel_list(*states):
    return [{"id": "k%d" % i, "execution_state": state} for i, state in enumerate(states)]


def checked_hub():
    users = [user_model(name, {"": server_model(3600, url="/user/%s/" % name)}, idle_s=3600)
             for name in ("busy", "quiet", "none", "fresh")]
    users.append(user_model("active", {"": server_model(60, url="/user/active/")}))
    servers = {
        "/user/busy/": {"status": status(3000, 2), "kernels": kernel_list("idle", "busy")},
        "/user/quiet/": {"status": status(3000, 1), "kernels": kernel_list("idle")},
        "/user/none/": {"status": status(3000, 0)},
        "/user/fresh/": {"status": status(30, 1)},
    }
    return MemoryHub(users, servers=servers)


def test_check_kernels_keeps_busy_and_recently_active_servers_and_their_users(caplog):
    hub = checked_hub()
    with caplog.at_level(logging.INFO):
        stats = run(hub, CHECKS)
    assert sorted(call[1] for call in hub.of_kind("stop")) == ["none", "quiet"]
    assert sorted(call[1] for call in hub.of_kind("delete")) == ["none", "quiet"]
    assert (stats.checked, stats.kept_by_server, stats.check_failed) == (4, 2, 0)
    assert "keep user=busy server=- reason=kernel-busy" in caplog.text
    assert "keep user=fresh server=- reason=server-active idle_s=30" in caplog.text
    assert "keep-user user=busy reason=servers-alive" in caplog.text


def test_check_kernels_asks_only_idle_servers_and_kernels_only_when_needed():
    hub = checked_hub()
    run(hub, CHECKS)
    assert sorted(url for _, url, _ in hub.of_kind("status")) == [
        "/user/busy/", "/user/fresh/", "/user/none/", "/user/quiet/"]  # not /user/active/
    assert sorted(url for _, url, _ in hub.of_kind("kernels")) == ["/user/busy/", "/user/quiet/"]


def test_check_kernels_asks_each_server_with_a_token_of_its_owner_then_revokes_it():
    hub = checked_hub()
    stats = run(hub, CHECKS, check_token_s=90)
    minted = hub.of_kind("token")
    assert sorted(minted) == [("token", name, "", 90) for name in ("busy", "fresh", "none",
                                                                    "quiet")]
    for _, url, token in hub.of_kind("status") + hub.of_kind("kernels"):
        assert url == "/user/%s/" % token.user and token.server == ""  # the owner's, that server
    asked = {token.id: token.user for _, _, token in hub.of_kind("status")}
    assert sorted((user, asked[token_id]) for _, user, token_id in hub.of_kind("revoke")) == [
        (name, name) for name in ("busy", "fresh", "none", "quiet")]
    assert stats.checked == 4 and len(hub.calls) - len(hub.of_kind("list")) == \
        4 * 2 + 4 + 2 + 2 * 2  # per checked server: mint + revoke; status; kernels; acting


def test_check_kernels_a_token_that_cannot_be_revoked_is_a_debug_line(caplog):
    hub = MemoryHub([user_model("ann", {"": server_model(3600, url="/user/ann/")})],
                    servers={"/user/ann/": {"status": status(3000, 0)}},
                    revoke_error=HubUnavailable("DELETE /users/ann/tokens/t1: 503", 503))
    with caplog.at_level(logging.DEBUG, logger="idle_culler_daemon"):
        stats = run(hub, CHECKS)
    assert stats.stopped == 1 and stats.ok and stats.check_failed == 0
    (line,) = [r for r in caplog.records if "kernel-check-token-kept" in r.getMessage()]
    assert line.levelno == logging.DEBUG


def test_check_kernels_a_refused_token_judges_that_server_by_the_hub_alone(caplog):
    # The hub refuses a token for ann (a filtered `tokens` scope, or none at all): her server
    # is judged by the hub's data (stopped), said once with the scope; bob's check and stop
    # go on as if nothing happened.
    users = [user_model(name, {"": server_model(3600, url="/user/%s/" % name)})
             for name in ("ann", "bob", "cy")]
    hub = MemoryHub(users, servers={"/user/bob/": {"status": status(30, 1)},
                                    "/user/cy/": {"status": status(3000, 0)}},
                    token_results={"ann": HubAuthError("POST /users/ann/tokens answered 403",
                                                       403)})
    with caplog.at_level(logging.WARNING):
        stats = run(hub, CHECKS)
    assert sorted(call[1] for call in hub.of_kind("stop")) == ["ann", "cy"]  # bob is active
    assert [call[1] for call in hub.of_kind("status")] == ["/user/bob/", "/user/cy/"]
    assert (stats.check_failed, stats.kept_by_server, stats.ok) == (1, 1, True)
    (line,) = [r.getMessage() for r in caplog.records if "kernel-check-failed" in r.getMessage()]
    assert "reason=token-refused" in line and "scope tokens" in line
    assert [call[1] for call in hub.of_kind("revoke")] == ["bob", "cy"]  # none was minted for ann


def test_without_check_kernels_no_server_is_asked():
    hub = checked_hub()
    stats = run(hub, USERS)
    assert hub.of_kind("status") == [] and hub.of_kind("token") == [] and stats.stopped == 4


def test_max_age_stops_without_asking():
    hub = checked_hub()
    run(hub, CullSettings(timeout=600, max_age=1800, check_kernels=True))
    assert hub.of_kind("status") == [] and hub.of_kind("token") == []
    assert len(hub.of_kind("stop")) == 4


def test_dry_run_asks_too_and_plans_only_what_would_go():
    hub = checked_hub()
    stats = run(hub, CHECKS, dry_run=True)
    assert hub.of_kind("stop") == [] and len(hub.of_kind("status")) == 4
    assert sorted((e.action, e.user) for e in stats.plan) == [
        ("delete", "none"), ("delete", "quiet"), ("stop", "none"), ("stop", "quiet")]


@pytest.mark.parametrize("answer,reason", [
    (HubHTTPError("GET /user/x/api/status answered 424", 424), "http-424"),
    (HubHTTPError("GET /user/x/api/status answered 302", 302), "redirected"),
    (HubHTTPError("GET /user/x/api/status answered 404", 404), "not-jupyter-server"),
    (HubAuthError("GET /user/x/api/status answered 403", 403), "refused"),
    (HubUnavailable("GET /user/x/api/status: ReadTimeout"), "no-answer"),
    (HubProtocolError("GET /user/x/api/status: the answer is not JSON"), "not-jupyter-server"),
    ({"realhub": True}, "not-jupyter-server"),
])
def test_a_server_that_cannot_be_asked_is_judged_by_the_hub_and_logged_once(caplog, answer,
                                                                            reason):
    users = [user_model("u%d" % i, {"": server_model(3600, url="/user/u%d/" % i)})
             for i in range(3)]
    hub = MemoryHub(users, servers={"/user/u%d/" % i: {"status": answer} for i in range(3)})
    with caplog.at_level(logging.DEBUG, logger="idle_culler_daemon"):
        stats = run(hub, CHECKS)
    assert len(hub.of_kind("stop")) == 3 and stats.check_failed == 3 and stats.ok
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and "kernel-check-failed" in r.getMessage()]
    assert len(warnings) == 1 and "reason=%s" % reason in warnings[0].getMessage()
    assert len(hub.of_kind("revoke")) == 3  # every minted token revoked, the check failed or not


def test_a_server_without_url_is_judged_by_the_hub():
    model = user_model("ann", {"": server_model(3600)})
    model["servers"][""]["url"] = None
    hub = MemoryHub([model])
    stats = run(hub, CHECKS)
    assert len(hub.of_kind("stop")) == 1 and hub.of_kind("status") == []
    assert stats.check_failed == 1 and hub.of_kind("token") == []


# --- the mass-cull guard (docs/behaviour.md#mass-cull-guard) ---

def crowd(running=100, idle=90):
    """``running`` users with a server each; the first ``idle`` idle for 1000 s + 10 s * i."""
    return [user_model("u%03d" % i, {"": server_model(1000 + 10 * i if i < idle else 5)},
                       idle_s=1000 + 10 * i if i < idle else 5)
            for i in range(running)]


def test_guard_fraction_stops_and_deletes_nothing_and_says_so(caplog):
    hub = MemoryHub(crowd() + [user_model("gone", None, idle_s=90000)])
    with caplog.at_level(logging.ERROR):
        stats = run(hub, CullSettings(timeout=600, cull_users=True, max_stop_fraction=0.5))
    assert hub.of_kind("stop") == [] and hub.of_kind("delete") == []
    assert stats.servers_running == 100 and stats.held_back == 90 and not stats.ok
    assert "90 of 100" in stats.guard_tripped
    (error,) = [r.getMessage() for r in caplog.records if "mass-cull-guard" in r.getMessage()]
    assert "share=90/100" in error and "--max-stop-fraction" in error


def test_guard_cap_stops_the_longest_idle_and_skips_their_users_deletion(caplog):
    hub = MemoryHub(crowd())
    with caplog.at_level(logging.WARNING):
        stats = run(hub, CullSettings(timeout=600, cull_users=True, max_stops_per_pass=10))
    stopped = sorted(call[1] for call in hub.of_kind("stop"))
    assert stopped == ["u%03d" % i for i in range(80, 90)]
    assert sorted(call[1] for call in hub.of_kind("delete")) == stopped
    assert stats.held_back == 80 and stats.ok
    assert "stops-held-back held=80 planned=90 limit=10" in caplog.text


def test_guard_dry_run_still_shows_the_whole_plan_marked():
    hub = MemoryHub(crowd())
    stats = run(hub, CullSettings(timeout=600, max_stop_fraction=0.5), dry_run=True)
    assert len(stats.plan) == 90 and all(entry.held_back for entry in stats.plan)
    stats = run(MemoryHub(crowd()), CullSettings(timeout=600, max_stops_per_pass=10),
                dry_run=True)
    assert len(stats.plan) == 90 and sum(not entry.held_back for entry in stats.plan) == 10


@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_run_pass_submits_no_job_once_the_stop_signal_came_while_the_pool_was_busy(concurrency):
    # The signal arrives while every worker is busy and the pass waits for a free one: no job
    # may go out after that wait. The last stop to start waits for a heartbeat from the pass
    # (while acting, the pass beats only from inside that wait, as no job has finished), then
    # raises the flag and lets every stop finish.
    flag, waiting, release = threading.Event(), threading.Event(), threading.Event()
    started = []

    class BusyHub(MemoryHub):
        def stop_server(self, user, server, remove):
            started.append(user)
            if len(started) == concurrency:
                waiting.clear()
                assert waiting.wait(10), "the pass never waited for a free worker"
                flag.set()
                release.set()
            assert release.wait(10), "the test never released the stops"
            return super().stop_server(user, server, remove)

    hub = BusyHub([user_model("u%d" % i, {"": server_model(900)}) for i in range(10)])
    with ThreadPoolExecutor(max_workers=concurrency) as executor:
        stats = run_pass(hub, SETTINGS, NOW, Runtime(
            executor, concurrency, stop=flag, heartbeat=waiting.set,
            tick_s=0.01))
    assert len(hub.of_kind("stop")) == concurrency and stats.interrupted


def test_run_pass_warns_once_when_a_group_rule_meets_users_without_groups(caplog):
    models = [user_model("u%d" % i, {"": server_model(900)}) for i in range(5)]
    for model in models:
        del model["groups"]  # the token may not read them
    settings = CullSettings(timeout=600, rules=(RuleSettings("staff", groups=("staff",),
                                                             cull=False),))
    warned = set()
    for _ in range(2):  # a second pass of the same daemon says nothing new
        hub = MemoryHub(models)
        with caplog.at_level(logging.WARNING):
            run_pass(hub, settings, NOW, Runtime(InlineExecutor(), 4), warned)
        assert hub.of_kind("stop") == []
    warnings = [r for r in caplog.records if "groups-unknown" in r.getMessage()]
    assert len(warnings) == 1 and "read:users:groups" in warnings[0].getMessage()


def test_run_pass_a_server_the_token_cannot_reach_is_not_stopped_and_is_named_once(caplog):
    # A filtered token (delete:servers!group=lab) gets 404 for servers outside its filter:
    # not "stopped", the user not deleted, and one WARNING naming them for the process's life.
    models = [user_model("ann", {"": server_model(900)}, idle_s=900),
              user_model("bob", {"": server_model(900), "gpu": server_model(900, name="gpu")},
                         idle_s=900)]
    results = {("bob", ""): StopResult.UNREACHABLE, ("bob", "gpu"): StopResult.UNREACHABLE}
    warned = set()
    for _ in range(2):
        hub = MemoryHub(models, stop_results=results)
        with caplog.at_level(logging.INFO):
            stats = run_pass(hub, USERS, NOW, Runtime(InlineExecutor(), 4), warned)
        assert (stats.stopped, stats.unreachable, stats.failed, stats.ok) == (1, 2, 0, True)
        assert hub.of_kind("delete") == [("delete", "ann")]
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "stop-unreachable" in r.getMessage()]
    assert len(warnings) == 1 and "bob" in warnings[0] and "delete:servers" in warnings[0]
    assert "result=unreachable" in caplog.text


def test_guard_holds_back_user_deletions_too():
    # --cull-users --max-stop-fraction=0.1 --max-stops-per-pass=1 over 40 users, 20 of them
    # idle without a server: deleting 20 of 40 is over the fraction, so no one is deleted.
    users = [user_model("busy%02d" % i, {"": server_model(5)}) for i in range(20)] + \
        [user_model("gone%02d" % i, None, idle_s=90000 + i) for i in range(20)]
    settings = CullSettings(timeout=600, cull_users=True, max_stop_fraction=0.1,
                            max_stops_per_pass=1)
    hub = MemoryHub(users)
    stats = run(hub, settings)
    assert len(hub.of_kind("delete")) <= 1 and hub.of_kind("delete") == []
    assert stats.guard_tripped and stats.deletions_held_back == 20 and not stats.ok
    hub = MemoryHub(users)  # the count alone: one deletion a pass, the longest idle first
    stats = run(hub, CullSettings(timeout=600, cull_users=True, max_stops_per_pass=1))
    assert hub.of_kind("delete") == [("delete", "gone19")]
    assert stats.deletions_held_back == 19 and stats.ok


def test_guard_fraction_is_over_users_so_one_user_with_many_servers_holds_no_one_hostage():
    # One user with 12 idle named servers, and 10 other users of whom 3 are idle: 4 of 11
    # users would have a server stopped, under 0.5, so all 15 servers are stopped.
    many = user_model("many", {"s%02d" % i: server_model(900, name="s%02d" % i)
                               for i in range(12)})
    others = [user_model("u%d" % i, {"": server_model(900 if i < 3 else 5)}) for i in range(10)]
    hub = MemoryHub([many] + others)
    stats = run(hub, CullSettings(timeout=600, max_stop_fraction=0.5))
    assert stats.guard_tripped is None and stats.stopped == 15
    assert sorted({call[1] for call in hub.of_kind("stop")}) == ["many", "u0", "u1", "u2"]
    assert (stats.users_running, stats.servers_running) == (11, 22)


def test_check_kernels_a_failed_revocation_never_logs_the_minted_token(caplog):
    # Whatever the error's text holds, the token minted for the user stays out of the log.
    hub = MemoryHub([user_model("ann", {"": server_model(3600, url="/user/ann/")})],
                    servers={"/user/ann/": {"status": status(3000, 0)}},
                    revoke_error=RuntimeError("refused token secret-of-ann-1"))
    with caplog.at_level(logging.DEBUG, logger="idle_culler_daemon"):
        run(hub, CHECKS)
    (line,) = [r for r in caplog.records if "kernel-check-token-kept" in r.getMessage()]
    assert "secret-of-ann-1" not in line.getMessage() and "<redacted>" in line.getMessage()
