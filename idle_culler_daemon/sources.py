"""Where option values come from: the environment, config files, the token's places.

Every function here turns one source into raw values (text, or literals from a ``.py`` file)
and names the source in its errors; converting and validating them is ``config``'s job. Files
are read through a ``read_file`` callable and the environment is a mapping passed in, so this
module never touches ``os.environ`` and tests need no real files.
"""

import ast
import codecs
import configparser
import operator
import os.path
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from idle_culler_daemon.errors import ConfigError
from idle_culler_daemon.log import MIN_TOKEN_LENGTH
from idle_culler_daemon.options import (
    DEFAULT_CONFIG_FILE,
    ENV_PREFIX,
    OPTIONS,
    RULE_MATCHERS,
    RULE_SETTINGS,
    did_you_mean,
    env_names,
    file_option,
)

ReadFile = Callable[[str], str]  # raises OSError, or ValueError for a file that is not text
TOKEN_CREDENTIAL = "api-token"  # the name of the systemd credential (LoadCredential=)
_CHARACTER_NAMES = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab",
                    " ": "a space", "\ufeff": "a byte-order mark (U+FEFF)"}
BOM = "\ufeff"
# Read when present and no --config is given, the first found: the reference's traitlets file
# from the working directory (as the reference reads it), then the packaged location.
DEFAULT_CONFIG_FILES = ("idle_culler_config.py", DEFAULT_CONFIG_FILE)


@dataclass(frozen=True)
class RuleSection:
    """A ``[rule:NAME]`` section as read: its raw items and where it came from."""

    name: str
    items: Dict[str, str]
    where: str


# Byte-order marks of UTF-16 and UTF-32 (UTF-32 LE starts like UTF-16 LE): such a file is not
# UTF-8. A UTF-8 byte-order mark stays in the text: a config file drops it (editors on some
# systems write one), a token refuses it (see check_token).
_OTHER_BYTE_ORDER_MARKS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)


def read_text(path: str) -> str:
    """The text of a UTF-8 file (a ``ReadFile``).

    Raises OSError when the file cannot be read, and ValueError, with the reason, when it is
    not UTF-8 text. The callers turn both into a ConfigError naming the file.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    if data.startswith(_OTHER_BYTE_ORDER_MARKS):
        raise ValueError("it is UTF-16 or UTF-32 text (it starts with such a byte-order mark); "
                         "save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("it is not UTF-8 text (byte 0x%02x at offset %d)"
                         % (data[exc.start], exc.start)) from None


def environment_values(env: Mapping[str, str]) -> Dict[str, str]:
    """The ``JUPYTERHUB_IDLE_CULLER_*`` variables, by option name."""
    return {option.name: env[option.env_name] for option in OPTIONS
            if option.env_name and option.env_name in env}


def unknown_variables(env: Mapping[str, str]) -> List[str]:
    """A warning for each ``JUPYTERHUB_IDLE_CULLER_*`` variable that no option reads."""
    known = env_names()
    suffixes = [name[len(ENV_PREFIX):] for name in known]  # compare what follows the prefix
    return ["unknown environment variable %s is ignored%s"
            % (name, did_you_mean(name[len(ENV_PREFIX):], suffixes).replace(
                "mean ", "mean " + ENV_PREFIX))
            for name in sorted(env) if name.startswith(ENV_PREFIX) and name not in known]


def _file_keys() -> List[str]:
    return [option.name for option in OPTIONS if file_option(option.name)]


def read_config_file(path: str, read_file: ReadFile, required: bool = True
                     ) -> Optional[Tuple[Dict[str, Any], List[RuleSection]]]:
    """Read a config file into raw option values and rule sections.

    A file that does not exist is an error when ``required``, else None (a default file).
    """
    try:
        text = read_file(path)
    except FileNotFoundError:
        if not required:
            return None
        raise ConfigError("--config: cannot read %s: no such file" % path) from None
    except OSError as exc:
        raise ConfigError("--config: cannot read %s: %s" % (path, exc.strerror or exc)) from None
    except UnicodeDecodeError as exc:  # from a reader that decodes for itself
        raise ConfigError("config file %s is not UTF-8 text (byte 0x%02x at offset %d)"
                          % (path, exc.object[exc.start], exc.start)) from None
    except ValueError as exc:  # read_text's own: not UTF-8 text
        raise ConfigError("--config: cannot read %s: %s" % (path, exc)) from None
    if text.startswith(BOM):  # editors on some systems write one; it is not part of the text
        text = text[len(BOM):]
    if path.endswith(".py"):
        return _python_config(text, path), []
    return _ini_config(text, path)


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


# Arithmetic allowed on numbers in a .py config file (``60 * 60``, ``7 * 24 * 3600``): no
# powers (``10 ** 10 ** 10`` would never end) and nothing on strings (``"x" * 10 ** 9``).
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
               ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_SIGNS = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _literal(node: ast.AST) -> Any:
    """The value of a literal, or of constant arithmetic on numbers; ValueError otherwise."""
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _literal(node.left), _literal(node.right)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
            raise ValueError("arithmetic on something other than numbers")
        try:
            return _ARITHMETIC[type(node.op)](left, right)
        except ArithmeticError as exc:
            raise ValueError(str(exc)) from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _SIGNS:
        value = _literal(node.operand)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("a sign on something other than a number")
        return _SIGNS[type(node.op)](value)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item) for item in node.elts]
    return ast.literal_eval(node)


def _python_option(klass: str, key: str, where: str) -> str:
    """The option a ``c.<klass>.<key>`` line sets; ConfigError when it sets none."""
    if klass == "IdleCuller" and key == "cull_arbiter_hook":
        raise ConfigError(
            "%s: cull_arbiter_hook is Python code, which this culler never runs; describe the "
            "decision with [rule:NAME] sections instead (matchers: %s; settings: %s) in an INI "
            "file given with --config" % (where, ", ".join(RULE_MATCHERS),
                                          ", ".join(RULE_SETTINGS)))
    if klass == "Application" and key == "log_level":
        return "log_level"
    option = file_option(key) if klass == "IdleCuller" else None
    if option is None:
        raise ConfigError("%s: unknown option c.%s.%s%s" % (where, klass, key,
                                                            did_you_mean(key, _file_keys())))
    return option.name


def _python_config(text: str, path: str) -> Dict[str, Any]:
    """Read ``c.IdleCuller.<name> = <literal>`` lines of a traitlets file without running it.

    A value may be a literal or constant arithmetic on numbers; ``None`` means the default.
    """
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        raise ConfigError("config file %s: line %s: %s" % (path, exc.lineno, exc.msg)) from None
    except ValueError as exc:  # Python < 3.12: "source code string cannot contain null bytes"
        raise ConfigError("config file %s: %s" % (path, exc)) from None
    values: Dict[str, Any] = {}
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
        try:
            value = _literal(statement.value)  # type: ignore[attr-defined]
        except (ValueError, TypeError, SyntaxError):
            raise ConfigError("%s: the value of %s must be a literal or arithmetic on numbers"
                              % (where, target[1])) from None
        if value is not None:
            values[name] = value
    return values


def _ini_config(text: str, path: str) -> Tuple[Dict[str, Any], List[RuleSection]]:
    """Read the ``[culler]`` section and the ``[rule:NAME]`` sections of an INI file."""
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None,
                                       default_section="__no_default_section__")
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        raise ConfigError("config file %s: %s" % (path, " ".join(str(exc).split()))) from None
    values: Dict[str, Any] = {}
    rules: List[RuleSection] = []
    for section in parser.sections():
        if section == "culler":
            for key, raw in parser.items(section):
                option = file_option(key)
                if option is None:
                    raise ConfigError("config file %s: [culler]: unknown key %r%s" % (
                        path, key, did_you_mean(key.replace("-", "_"), _file_keys())))
                if raw.strip():  # an empty value means the default, as in --generate-config
                    values[option.name] = raw
        elif section.startswith("rule:") and section[5:].strip():
            rules.append(RuleSection(section[5:].strip(), dict(parser.items(section)),
                                     "config file %s: [%s]" % (path, section)))
        else:
            raise ConfigError("config file %s: unknown section [%s] (expected [culler] or "
                              "[rule:NAME])" % (path, section))
    return values, rules


def find_token(token_file: Optional[str], env: Mapping[str, str], read_file: ReadFile
               ) -> Tuple[str, str]:
    """The API token and where it was found (for ``--show-config``): --api-token-file, then
    $CREDENTIALS_DIRECTORY, then $JUPYTERHUB_API_TOKEN."""
    candidates = []
    if token_file:
        candidates.append(("--api-token-file", token_file, True))
    if env.get("CREDENTIALS_DIRECTORY"):
        candidates.append(("$CREDENTIALS_DIRECTORY",
                           os.path.join(env["CREDENTIALS_DIRECTORY"], TOKEN_CREDENTIAL), False))
    for what, path, required in candidates:
        try:
            token = read_file(path).strip()
        except FileNotFoundError:
            if required:
                raise ConfigError("%s: cannot read %s: no such file" % (what, path)) from None
            continue
        except OSError as exc:
            raise ConfigError("%s: cannot read %s: %s" % (what, path, exc.strerror or exc)
                              ) from None
        except ValueError as exc:
            raise ConfigError("%s: cannot read %s: %s" % (what, path, exc)) from None
        if token:
            return check_token(token, "%s: %s" % (what, path)), "file %s (%s)" % (path, what)
        if required:
            raise ConfigError("%s: %s is empty" % (what, path))
    token = env.get("JUPYTERHUB_API_TOKEN", "").strip()
    if token:
        return check_token(token, "$JUPYTERHUB_API_TOKEN"), "$JUPYTERHUB_API_TOKEN"
    raise ConfigError("no API token: give --api-token-file=PATH, or a systemd credential "
                      "'api-token' ($CREDENTIALS_DIRECTORY/api-token), or $JUPYTERHUB_API_TOKEN")


def check_token(token: str, where: str) -> str:
    """Return ``token`` if a hub could have issued it and HTTP can carry it; else ConfigError.

    A JupyterHub token is printable ASCII without spaces, at least 8 characters. Anything else
    (a newline or a byte-order mark from an editor, two tokens pasted) would fail on every
    request or end the process; the message says what is wrong and where, never the token.
    """
    for position, char in enumerate(token, 1):
        if not "!" <= char <= "~":
            name = _CHARACTER_NAMES.get(char) or (
                "a control character (U+%04X)" % ord(char) if char.isascii() or
                not char.isprintable() else "a non-ASCII character (U+%04X)" % ord(char))
            raise ConfigError("%s: the token has %s at character %d; a JupyterHub token is "
                              "printable ASCII without spaces" % (where, name, position))
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError("%s: the token has %d characters; JupyterHub's tokens have at least "
                          "%d" % (where, len(token), MIN_TOKEN_LENGTH))
    return token


def ssl_files(folder: str, env: Mapping[str, str]) -> Tuple[Tuple[str, str], str]:
    """The hub's internal-SSL client certificate and CA: ``((certfile, keyfile), ca_file)``.

    ``$JUPYTERHUB_SSL_*`` (set by the hub for a managed service) win over the folder.
    """
    keyfile = env.get("JUPYTERHUB_SSL_KEYFILE") or os.path.join(
        folder, "hub-internal", "hub-internal.key")
    certfile = env.get("JUPYTERHUB_SSL_CERTFILE") or os.path.join(
        folder, "hub-internal", "hub-internal.crt")
    ca_file = env.get("JUPYTERHUB_SSL_CLIENT_CA") or os.path.join(folder, "hub-ca", "hub-ca.crt")
    for path in (keyfile, certfile, ca_file):
        if not os.path.isfile(path):
            raise ConfigError("--ssl-enabled: certificate file %s does not exist (see "
                              "--internal-certs-location)" % path)
    return (certfile, keyfile), ca_file
