"""The reference's traitlets ``.py`` config file, read as data and never run.

Only ``c.IdleCuller.<name> = <value>`` statements (and ``c.Application.log_level``) are read;
a value is a literal (text, number, boolean, None, list, dict) or arithmetic on numbers, and
``c.IdleCuller.rules`` holds rules as ``{NAME: {key: value}}`` with the keys of a
``[rule:NAME]`` section (``config.parse_rule`` checks them, as it checks the INI sections).

A config file is input like any other, so reading one is bounded: its size (``sources`` reads
at most ``MAX_CONFIG_BYTES``), the digits of a number and of every intermediate result (big-int
arithmetic is slow), the length of a text, the nesting of a value. Python's own parser limits
(RecursionError, MemoryError, ValueError) become ConfigErrors too: every problem here ends the
process with exit 78, which the units do not restart. Code that a reference config holds (a
``cull_arbiter_hook``, the environment read through ``os``) gets a message naming what
replaces it.
"""

import ast
import io
import operator
import re
import tokenize
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from idle_culler_daemon.errors import ConfigError
from idle_culler_daemon.options import (
    ENV_PREFIX,
    OPTIONS,
    RULE_KEYS,
    RULE_MATCHERS,
    RULE_SETTINGS,
    did_you_mean,
    file_option,
)

MAX_DIGITS = 18  # no value a culler takes has more (ten years of seconds has 9)
MAX_NUMBER = 10 ** MAX_DIGITS
MAX_DIGIT_RUN = 100  # a longer run of digits anywhere in the text is refused before parsing
MAX_TEXT = 4096  # characters of one text (a path's PATH_MAX)
MAX_DEPTH = 32  # nesting of one value: lists, dicts and each arithmetic operation
MAX_OPERATORS = 200  # operators in one statement (each nests its value one level deeper)
RULES = "rules"  # c.IdleCuller.rules: not an option, the file's rule sections


@dataclass(frozen=True)
class RuleSection:
    """A rule as read from a file: its raw items and where it came from."""

    name: str
    items: Dict[str, Any]
    where: str


class _Refused(ValueError):
    """A value that is a literal but beyond a bound (the message says which)."""


# Arithmetic allowed on numbers (``60 * 60``, ``7 * 24 * 3600``): no powers (``10 ** 10 ** 10``
# would never end), nothing on strings (``"x" * 10 ** 9``), and every result bounded.
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
               ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_SIGNS = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bounded(value: Any, what: str) -> Any:
    """``value`` if it is within the bounds of a number or a text; else _Refused."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MAX_NUMBER:
        raise _Refused("has %s of more than %d digits" % (what, MAX_DIGITS))
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise _Refused("has a text of more than %d characters" % MAX_TEXT)
    return value


def _literal(node: ast.AST, depth: int = 0) -> Any:
    """The value of a literal, or of arithmetic on numbers; ValueError otherwise."""
    if depth > MAX_DEPTH:
        raise _Refused("is nested more than %d levels deep" % MAX_DEPTH)
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value,
                                                                           (str, int, float))):
        return _bounded(node.value, "a number")
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _literal(node.left, depth + 1), _literal(node.right, depth + 1)
        if not (_number(left) and _number(right)):
            raise ValueError("arithmetic on something other than numbers")
        try:
            result = _ARITHMETIC[type(node.op)](left, right)
        except ArithmeticError as exc:
            raise ValueError(str(exc)) from None
        return _bounded(result, "arithmetic whose result is too large: a number")
    if isinstance(node, ast.UnaryOp) and type(node.op) in _SIGNS:
        value = _literal(node.operand, depth + 1)
        if not _number(value):
            raise ValueError("a sign on something other than a number")
        return _SIGNS[type(node.op)](value)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item, depth + 1) for item in node.elts]
    if isinstance(node, ast.Dict):
        result: Dict[Any, Any] = {}
        for key_node, value_node in zip(node.keys, node.values):
            if key_node is None:  # {**other}
                raise ValueError("a dict unpacked into another")
            key = _literal(key_node, depth + 1)
            if not isinstance(key, (str, int, float)):
                raise ValueError("a dict key that is not text or a number")
            if key in result:
                raise _Refused("has the key %r twice" % (key,))
            result[key] = _literal(value_node, depth + 1)
        return result
    raise ValueError("not a literal")


# --- code in a reference config: the message that names the fix --------------------------------

HOOK = "cull_arbiter_hook"
_ENVIRONMENT_NAMES = frozenset({"environ", "environb", "getenv", "getenvb"})


def _hook_message(where: str, what: str) -> ConfigError:
    return ConfigError(
        "%s: %s is Python code, which this culler never runs; describe the decision as rules "
        "instead: c.IdleCuller.rules = {NAME: {key: value, ...}} in this file, or [rule:NAME] "
        "sections in an INI file (matchers: %s; settings: %s)"
        % (where, what, ", ".join(RULE_MATCHERS), ", ".join(RULE_SETTINGS)))


def _assigns_hook(node: ast.AST) -> bool:
    targets = (node.targets if isinstance(node, ast.Assign) else
               [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
    return any(isinstance(target, ast.Attribute) and target.attr == HOOK for target in targets)


def _reads_environment(node: ast.AST) -> bool:
    """``import os``, ``from os import ...``, ``os.environ``, ``environ``, ``getenv``."""
    if isinstance(node, ast.Import):
        return any(alias.name == "os" for alias in node.names)
    if isinstance(node, ast.ImportFrom):
        return node.module == "os"
    if isinstance(node, ast.Attribute):
        return node.attr in _ENVIRONMENT_NAMES
    return isinstance(node, ast.Name) and node.id in _ENVIRONMENT_NAMES


def _environment_message(statement: ast.stmt, path: str) -> ConfigError:
    target = _config_target(statement)
    option = file_option(target[1]) if target and target[0] == "IdleCuller" else None
    if option is not None and option.env_name:
        instead = "set %s in the environment instead" % option.env_name
    else:
        instead = ("set the %s* environment variables instead (one for each option, such as "
                   "%sTIMEOUT)" % (ENV_PREFIX, ENV_PREFIX))
    return ConfigError("config file %s: line %d: a .py config file is read as data, never run, "
                       "so it cannot read the environment; %s"
                       % (path, statement.lineno, instead))


def _refuse_code(tree: ast.Module, path: str) -> None:
    """Raise the most helpful ConfigError for code the culler will not run, if there is any:
    a hook (assigned or defined anywhere) first, then the environment."""
    hooks: List[Tuple[int, int]] = []  # (0 for an assignment, 1 for a function; its line)
    environment: List[ast.stmt] = []
    for statement in tree.body:
        for node in ast.walk(statement):
            if _assigns_hook(node):
                hooks.append((0, node.lineno))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                hooks.append((1, node.lineno))
            elif _reads_environment(node) and statement not in environment:
                environment.append(statement)
    if hooks:
        rank, line = min(hooks)
        raise _hook_message("config file %s: line %d" % (path, line), HOOK if rank == 0 else
                            "a function (such as a %s)" % HOOK)
    if environment:
        assigning = [statement for statement in environment if _config_target(statement)]
        raise _environment_message((assigning or environment)[0], path)


# --- statements -----------------------------------------------------------------------------------

def _is_get_config(statement: ast.stmt) -> bool:
    """``c = get_config()``, the first line of every traitlets config file."""
    return (isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call)
            and isinstance(statement.value.func, ast.Name)
            and statement.value.func.id == "get_config")


def _config_target(statement: ast.stmt) -> Optional[Tuple[str, str]]:
    """``(Class, name)`` of a ``c.Class.name = ...`` statement, else None."""
    if not isinstance(statement, ast.Assign) or len(statement.targets) != 1:
        return None
    target = statement.targets[0]
    if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute)
            and isinstance(target.value.value, ast.Name) and target.value.value.id == "c"):
        return target.value.attr, target.attr
    return None


def _file_keys() -> List[str]:
    return [option.name for option in OPTIONS if file_option(option.name)] + [RULES]


def _python_option(klass: str, key: str, where: str) -> str:
    """The option a ``c.<klass>.<key>`` line sets (or RULES); ConfigError when it sets none."""
    if klass == "Application" and key == "log_level":
        return "log_level"
    if klass == "IdleCuller" and key == RULES:
        return RULES
    if klass == "IdleCuller" and key == "rule":
        raise ConfigError("%s: c.IdleCuller.rule (--rule) is not read from files; give rules as "
                          "c.IdleCuller.rules = {NAME: {key: value, ...}}, such as "
                          "c.IdleCuller.rules = {\"gpu\": {\"profiles\": \"gpu-*\", "
                          "\"timeout\": \"15m\"}}" % where)
    option = file_option(key) if klass == "IdleCuller" else None
    if option is None:
        raise ConfigError("%s: unknown option c.%s.%s%s" % (where, klass, key,
                                                            did_you_mean(key, _file_keys())))
    return option.name


_BRACKETS = {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}
_PUNCTUATION = frozenset({",", ":", ".", "=", ";"})


def _check_shape(text: str, path: str) -> None:
    """Refuse, before Python's parser sees it, what would make it recurse deeply: brackets
    nested more than MAX_DEPTH deep, or more than MAX_OPERATORS operators in one statement.
    Python 3.9's parser crashes the process (a segfault, not an exception) on a long enough
    chain such as ``1+1+...+1``; later versions raise RecursionError. Tokenizing is linear."""
    depth = operators = 0
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.NEWLINE:
                operators = 0
            elif token.type != tokenize.OP or token.string in _PUNCTUATION:
                continue
            elif token.string in _BRACKETS:
                depth += _BRACKETS[token.string]
                if depth > MAX_DEPTH:
                    raise ConfigError("config file %s: line %d: brackets nested more than %d "
                                      "deep" % (path, token.start[0], MAX_DEPTH))
            else:
                operators += 1
                if operators > MAX_OPERATORS:
                    raise ConfigError("config file %s: line %d: more than %d operators in one "
                                      "statement: its value is nested too deeply"
                                      % (path, token.start[0], MAX_OPERATORS))
    except (tokenize.TokenError, SyntaxError, ValueError):
        return  # not Python: ast.parse says what is wrong


def _parse(text: str, path: str) -> ast.Module:
    """The syntax tree, or ConfigError; Python's parser limits are errors like any other."""
    run = re.search("[0-9]{%d}" % (MAX_DIGIT_RUN + 1), text)
    if run:  # decimal digits convert in quadratic time (Python < 3.11 has no limit)
        raise ConfigError("config file %s: line %d: a number of more than %d digits"
                          % (path, text.count("\n", 0, run.start()) + 1, MAX_DIGIT_RUN))
    _check_shape(text, path)
    try:
        return ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise ConfigError("config file %s: line %s: %s" % (path, exc.lineno, exc.msg)) from None
    except (RecursionError, MemoryError):
        raise ConfigError("config file %s: nested too deeply for Python's parser; a config "
                          "file holds literal values" % path) from None
    except ValueError as exc:  # Python < 3.12: "source code string cannot contain null bytes"
        raise ConfigError("config file %s: %s" % (path, exc)) from None


def read_python_config(text: str, path: str) -> Tuple[Dict[str, Any], List[RuleSection]]:
    """Read the option values and the rules of a traitlets file without running it.

    A value may be a literal or constant arithmetic on numbers; ``None`` means the default.
    """
    tree = _parse(text, path)
    _refuse_code(tree, path)
    values: Dict[str, Any] = {}
    rules: List[RuleSection] = []
    for statement in tree.body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            continue  # a docstring
        if _is_get_config(statement):
            continue
        where = "config file %s: line %d" % (path, statement.lineno)
        target = _config_target(statement)
        if target is None:
            raise ConfigError("%s: only 'c.IdleCuller.<name> = <literal>' assignments are read "
                              "from .py files" % where)
        name = _python_option(*target, where)
        value = _value(statement.value, target[1], where)  # type: ignore[attr-defined]
        if name == RULES:
            rules = [] if value is None else _rules(value, where)
        elif value is not None:
            values[name] = value
    return values, rules


def _value(node: ast.AST, key: str, where: str) -> Any:
    try:
        return _literal(node)
    except _Refused as exc:
        raise ConfigError("%s: the value of %s %s" % (where, key, exc)) from None
    except (ValueError, TypeError, RecursionError):
        raise ConfigError("%s: the value of %s must be a literal or arithmetic on numbers"
                          % (where, key)) from None


# --- rules -------------------------------------------------------------------------------------

def _rules(value: Any, where: str) -> List[RuleSection]:
    """``{NAME: {key: value}}`` as rule sections, for ``config.parse_rule`` to check."""
    if not isinstance(value, dict):
        raise ConfigError("%s: c.IdleCuller.rules must be a dict of rules by name, "
                          "{NAME: {key: value, ...}}" % where)
    sections = []
    for name, items in value.items():
        if not isinstance(name, str):
            raise ConfigError("%s: rules: the rule name %r is not text" % (where, name))
        rule_where = "%s: rules[%r]" % (where, name)
        if not isinstance(items, dict):
            raise ConfigError("%s: a rule must be a dict of keys and values, {key: value, ...}, "
                              "the keys of a [rule:NAME] section" % rule_where)
        sections.append(RuleSection(name, {str(key): _rule_value(str(key), raw, rule_where)
                                           for key, raw in items.items()}, rule_where))
    return sections


def _rule_value(key: str, raw: Any, where: str) -> Any:
    """A rule's value as its key's converter takes it: text as in an INI file; a number or a
    boolean for a setting; a list of texts for a matcher, a dict of texts for user_options."""
    name = key.strip().replace("-", "_")
    if name not in RULE_KEYS:
        return raw  # parse_rule names the unknown key, with the closest real one
    if isinstance(raw, str):
        return '""' if name == "server_names" and raw == "" else raw
    if name not in RULE_MATCHERS:  # a setting
        if isinstance(raw, (bool, int, float)):
            return raw
        raise ConfigError("%s: key %r: %r is not text, a number or true/false" % (where, key, raw))
    if name == "user_options" and isinstance(raw, dict):
        raw = [_option_pair(key, pair, where) for pair in raw.items()]
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise ConfigError("%s: key %r: %r is not text or a list of texts%s" % (
            where, key, raw, " or a dict of texts" if name == "user_options" else ""))
    for item in raw:
        if "," in item:
            raise ConfigError("%s: key %r: the item %r has a ','; give each pattern as its "
                              "own item" % (where, key, item))
    return ['""' if name == "server_names" and item == "" else item for item in raw]


def _option_pair(key: str, pair: Tuple[Any, Any], where: str) -> str:
    """``{"tier": "vip*"}``'s item as ``tier=vip*``."""
    option, pattern = pair
    if not (isinstance(option, str) and isinstance(pattern, str)) or "=" in option:
        raise ConfigError("%s: key %r: {%r: %r} is not a user_options key (text without '=') "
                          "and a pattern (text)" % (where, key, option, pattern))
    return "%s=%s" % (option, pattern)
