"""Every log event the package writes is in the registry (``events.EVENTS``), and no other."""

import ast
import pathlib

import idle_culler_daemon
from idle_culler_daemon.events import COMPUTED, EVENTS

# the package under test, wherever it is installed (the deb's autopkgtest runs these tests
# from a copy of tests/ against /usr/lib/python3/dist-packages)
PACKAGE = pathlib.Path(idle_culler_daemon.__file__).resolve().parent
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}


def module_constants(trees):
    """Every module-level ``NAME = "text"`` of the package: names of events kept in constants."""
    constants = {}
    for tree in trees.values():
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                constants[node.targets[0].id] = node.value.value
    return constants


def logged_names(trees):
    """(module:line, names) of every ``log.<level>(first, ...)`` call: the names its first
    argument can take; None when they cannot be known from the source."""
    constants = module_constants(trees)
    for module, tree in trees.items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LEVELS and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "log" and node.args):
                continue
            first, where = node.args[0], "%s:%d" % (module, node.lineno)
            if isinstance(first, ast.Constant):
                yield where, {first.value}
            elif isinstance(first, ast.Name) and first.id in constants:
                yield where, {constants[first.id]}
            elif (isinstance(first, ast.BinOp) and isinstance(first.op, ast.Add)
                  and isinstance(first.right, ast.Constant) and first.right.value in COMPUTED[1]):
                yield where, {action + first.right.value for action in COMPUTED[0]}
            else:
                yield where, None


def package_trees():
    return {path.stem: ast.parse(path.read_text(encoding="utf-8"))
            for path in sorted(PACKAGE.glob("*.py"))}


def test_every_logged_event_name_is_registered():
    calls = list(logged_names(package_trees()))
    assert len(calls) > 40, "few logging calls found: has the logging style changed?"
    unknown = ["%s %s" % (where, sorted(names - set(EVENTS)) if names else "a computed name "
               "the registry cannot vouch for") for where, names in calls
               if names is None or not names <= set(EVENTS)]
    assert unknown == [], "register the event in idle_culler_daemon/events.py"


def test_every_registered_event_is_logged_somewhere():
    used = set().union(*(names for _, names in logged_names(package_trees()) if names))
    assert sorted(set(EVENTS) - used) == []


def test_the_check_sees_an_unregistered_or_unknowable_name():
    tree = ast.parse("log.info('no-such-event')\nlog.warning(kind + '-exploded')\n"
                     "log.error(f'{kind}-failed')\n")
    found = list(logged_names({"sample": tree}))
    assert found == [("sample:1", {"no-such-event"}), ("sample:2", None), ("sample:3", None)]


def test_every_event_says_its_levels_and_meaning():
    for name, event in EVENTS.items():
        assert event.name == name and event.meaning
        assert set(event.levels.split(", ")) <= {level.upper() for level in LEVELS}, name
