"""Rules: parsing and checking ``[rule:NAME]`` sections and ``--rule`` texts, and which rules
users can choose.

A rule's keys are the fields of ``settings.RuleSettings`` declared with ``rule_key``: what
they accept, what a 0 means and whether a value culls less than the global setting all come
from there. Every problem is a ``ConfigError`` naming where the rule came from and the key.
"""

import fnmatch
import re
from typing import Any, Dict, List, Mapping, Tuple

from idle_culler_daemon.errors import ConfigError
from idle_culler_daemon.options import did_you_mean
from idle_culler_daemon.settings import (
    RULE_KEYS,
    RULE_KEYS_DECLARED,
    RULE_MATCHERS,
    RULE_SETTINGS,
    CullSettings,
    RuleSettings,
    show,
)
from idle_culler_daemon.sources import RuleSection

# The idle limits of a rule, and what they would stop at 0 (refused, like --timeout=0).
IDLE_LIMITS = {key.name: key.zero for key in RULE_KEYS_DECLARED if key.zero}


def parse_rule(name: str, items: Mapping[str, Any], where: str) -> RuleSettings:
    """Validate one rule's keys and values into ``RuleSettings``.

    Raises ConfigError naming ``where`` and the key for unknown keys, bad patterns and bad
    values, and for a rule with no matcher at all.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ConfigError("%s: rule name %r may use only letters, digits, '_', '.' and '-'"
                          % (where, name))
    fields: Dict[str, Any] = {"name": name}
    for key, raw in items.items():
        key = key.strip().replace("-", "_")
        if key not in RULE_KEYS:
            raise ConfigError("%s: unknown key %r%s (matchers: %s; settings: %s)"
                              % (where, key, did_you_mean(key, RULE_KEYS),
                                 ", ".join(RULE_MATCHERS), ", ".join(RULE_SETTINGS)))
        try:
            fields[key] = RULE_KEYS[key](raw)
        except ValueError as exc:
            raise ConfigError("%s: key %r: %r %s" % (where, key, raw, exc)) from None
        if key == "user_options":
            _check_patterns(tuple(pattern for _, pattern in fields[key]),
                            "%s: key %r" % (where, key))
        elif key in RULE_MATCHERS:
            _check_patterns(fields[key], "%s: key %r" % (where, key))
        if key in IDLE_LIMITS and fields[key] == 0:
            raise ConfigError("%s: key %r: 0 would stop every matching %s at once; give seconds "
                              "> 0 (an age limit of 0 switches it off, an idle limit cannot)"
                              % (where, key, IDLE_LIMITS[key]))
    if not any(key in fields for key in RULE_MATCHERS):
        raise ConfigError("%s: a rule needs at least one of %s" % (where, ", ".join(RULE_MATCHERS)))
    return RuleSettings(**fields)


def _check_patterns(patterns: Tuple[str, ...], where: str) -> None:
    """Refuse fnmatch patterns that cannot mean what their author wanted."""
    if not patterns:
        raise ConfigError("%s: no pattern given" % where)
    for pattern in patterns:
        if pattern.count("[") != pattern.count("]"):
            raise ConfigError("%s: bad pattern %r (unbalanced brackets)" % (where, pattern))
        try:
            re.compile(fnmatch.translate(pattern))
        except re.error as exc:
            raise ConfigError("%s: bad pattern %r (%s)" % (where, pattern, exc)) from None


def parse_rule_option(text: str, where: str) -> RuleSettings:
    """Parse ``NAME:key=value,key=value`` from ``--rule``.

    A comma-separated segment without ``=`` continues the previous value, so
    ``staff:groups=staff,admins,cull=false`` gives ``groups = staff, admins``. After
    ``user_options=``, a ``KEY=PATTERN`` segment whose KEY is not a rule key continues it too:
    ``big:user_options=image=*torch*,size=large,timeout=1h``.
    """
    name, colon, body = text.partition(":")
    if not colon or not name.strip():
        raise ConfigError("%s: %r is not NAME:key=value,..." % (where, text))
    items: Dict[str, str] = {}
    last_key = None
    for segment in body.split(","):
        key, equals, value = segment.partition("=")
        if last_key is not None and equals and _continues_user_options(last_key, key):
            items[last_key] += "," + segment.strip()
        elif equals:
            last_key = key.strip()
            if last_key in items:
                raise ConfigError("%s: key %r given twice in %r" % (where, last_key, text))
            items[last_key] = value.strip()
        elif last_key is not None and segment.strip():
            items[last_key] += "," + segment.strip()
        elif segment.strip():
            raise ConfigError("%s: %r has no '=' in %r" % (where, segment, text))
    return parse_rule(name.strip(), items, "%s %r" % (where, name.strip()))


def _continues_user_options(last_key: str, key: str) -> bool:
    """Is ``key=...`` another KEY=PATTERN pair of a ``user_options=`` value in ``--rule``?"""
    return (last_key.replace("-", "_") == "user_options"
            and key.strip().replace("-", "_") not in RULE_KEYS)


def all_rules(values: Mapping[str, Any], sections: List[RuleSection]) -> Tuple[RuleSettings, ...]:
    """Exclusions first, then ``--rule`` options, then the config file's sections."""
    rules: List[RuleSettings] = []
    if values["exclude_users"]:
        rules.append(RuleSettings("exclude-users", users=values["exclude_users"], cull=False))
    if values["exclude_groups"]:
        rules.append(RuleSettings("exclude-groups", groups=values["exclude_groups"], cull=False))
    rules += [parse_rule_option(text, "--rule") for text in values["rule"]]
    rules += [parse_rule(section.name, section.items, section.where) for section in sections]
    names = [rule.name for rule in rules]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError("rule %r is defined more than once" % name)
    return tuple(rules)


def rule_text(rule: RuleSettings) -> str:
    """A rule's keys and values, as ``--show-config`` shows them."""
    parts = []
    for key in RULE_MATCHERS + RULE_SETTINGS:
        value = getattr(rule, key)
        if value not in (None, ()):
            parts.append("%s=%s" % (key, show(value)))
    return ", ".join(parts)

def relaxing_rules(culling: CullSettings) -> List[Tuple[str, str]]:
    """The rules that match on values users choose (``profiles``, ``user_options``) and cull
    less than the global settings, each with what it relaxes (``timeout=2h``, ``cull=false``).

    A user who may set those values can pick such a rule for their own servers.
    """
    found = []
    for rule in culling.rules:
        if not rule.needs_user_options:
            continue
        relaxed = [key.name for key in RULE_KEYS_DECLARED if key.relaxes
                   and _relaxes(key.relaxes, getattr(rule, key.name),
                                getattr(culling, key.name, None))]
        if relaxed:
            found.append((rule.name, ", ".join("%s=%s" % (name, show(getattr(rule, name)))
                                               for name in relaxed)))
    return found


def _relaxes(how: str, value: Any, global_value: Any) -> bool:
    """Does a rule's ``value`` cull less than the global one? (``how``: see RuleKey)."""
    if value is None:
        return False
    if how == "longer":  # an age limit of 0 is none at all
        return bool(global_value) and (value == 0 or value > global_value)
    return value is (how == "true") and value != global_value
