"""What the token must be allowed to do: scopes per feature, and the preflight's verdict."""

from idle_culler_daemon.config import CullSettings, RuleSettings
from idle_culler_daemon.scopes import (
    missing_scopes,
    read_scopes,
    scope_hint,
    verdict,
    write_scopes,
)

RULED = CullSettings(rules=(RuleSettings("staff", groups=("staff",), cull=False),))



def required_scopes(settings):
    """What a run (not a dry run) needs: the scopes to read, then those to act."""
    return tuple(read_scopes(settings) + write_scopes(settings))

def test_required_scopes_grow_with_the_features():
    base = required_scopes(CullSettings())
    assert ("delete:servers",) in base and ("read:servers",) in base
    assert ("delete:users", "admin:users") in required_scopes(CullSettings(cull_users=True))
    assert ("read:users:groups",) in required_scopes(RULED)


def test_missing_scopes_names_each_missing_one():
    needed = required_scopes(CullSettings(cull_users=True))
    granted = ["list:users", "read:users:activity", "read:servers"]
    assert missing_scopes(needed, granted) == ["delete:servers", "delete:users or admin:users"]


def test_missing_scopes_knows_implied_and_filtered_scopes():
    needed = required_scopes(CullSettings(cull_users=True))
    assert missing_scopes(needed, ["admin:users", "admin:servers"]) == []
    assert missing_scopes(needed, ["admin:users", "read:servers!group=a",
                                   "delete:servers"]) == []


def test_verdict_of_a_hub_that_reports_no_scopes_is_not_reported():
    assert verdict({"kind": "service", "name": "culler"}, CullSettings()).reported is False


def test_verdict_names_missing_required_and_advised_scopes():
    found = verdict({"scopes": ["list:users", "read:users:activity", "read:servers",
                                "delete:servers", "delete:users"]}, CullSettings(cull_users=True))
    assert found.reported and found.missing == ()
    assert found.advised == ("read:users or admin:users",)
    found = verdict({"scopes": ["list:users"]}, RULED)
    assert found.missing == ("read:users:activity", "read:servers", "read:users:groups",
                             "delete:servers")


def test_verdict_of_a_dry_run_needs_only_read_scopes_and_names_the_write_ones():
    read_only = {"scopes": ["list:users", "read:users", "read:servers"]}
    assert verdict(read_only, CullSettings(cull_users=True)).missing == (
        "delete:servers", "delete:users or admin:users")
    found = verdict(read_only, CullSettings(cull_users=True), dry_run=True)
    assert found.missing == () and found.unused == ("delete:servers",
                                                    "delete:users or admin:users")
    assert verdict({"scopes": ["list:users"]}, CullSettings(), dry_run=True).missing == (
        "read:users:activity", "read:servers")


def test_scope_hint_names_the_scope_of_each_kind_of_request():
    assert scope_hint("stop") == "delete:servers"
    assert scope_hint("delete").startswith("delete:users")


def test_verdict_before_scopes_refuses_an_owner_that_is_not_an_admin():
    # JupyterHub 1.x: GET /user for a service is {"kind", "name", "admin"}, without scopes.
    service = {"kind": "service", "name": "culler", "admin": False}
    found = verdict(service, CullSettings(), has_scopes=False)
    assert not found.reported and found.missing and "admin" in found.missing[0]
    assert verdict(dict(service, admin=True), CullSettings(), has_scopes=False).missing == ()
    # a hub with scopes that left them out says nothing about the admin flag
    assert verdict(service, CullSettings(), has_scopes=True).missing == ()


def test_kernel_checks_need_tokens_globally_or_in_a_rule_and_no_access_servers():
    # the culler mints a token owned by the server's user; its own never goes to a server
    assert ("tokens",) not in required_scopes(CullSettings())
    assert ("tokens",) in required_scopes(CullSettings(check_kernels=True))
    rule = RuleSettings("gpu", profiles=("gpu-*",), check_kernels=True)
    assert ("tokens",) in required_scopes(CullSettings(rules=(rule,)))
    base = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
    found = verdict({"scopes": base}, CullSettings(check_kernels=True))
    assert found.missing == ("tokens",)
    for granted in ("tokens", "tokens!group=lab", "tokens!user=ann"):
        assert verdict({"scopes": base + [granted]},
                       CullSettings(check_kernels=True)).missing == ()
    for useless in ("access:servers", "shares", "read:tokens"):
        assert verdict({"scopes": base + [useless]},
                       CullSettings(check_kernels=True)).missing == ("tokens",)
    assert scope_hint("check") == "tokens"
