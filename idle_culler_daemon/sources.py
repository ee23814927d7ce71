"""Where option values come from: the environment, config files, the token's places.

Every function here turns one source into raw values (text, or literals from a ``.py`` file)
and names the source in its errors; converting and validating them is ``config``'s job. Files
are read through a ``read_file`` callable and the environment is a mapping passed in, so this
module never touches ``os.environ`` and tests need no real files.
"""

import ast
import codecs
import configparser
import os.path
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from idle_culler_daemon.errors import ConfigError
from idle_culler_daemon.options import OPTIONS, file_option

ReadFile = Callable[[str], str]  # raises OSError, or ValueError for a file that is not text
TOKEN_CREDENTIAL = "api-token"  # the name of the systemd credential (LoadCredential=)
MIN_TOKEN_LENGTH = 8  # JupyterHub refuses shorter tokens
_CHARACTER_NAMES = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab",
                    " ": "a space", "\ufeff": "a byte-order mark (U+FEFF)"}


@dataclass(frozen=True)
class RuleSection:
    """A ``[rule:NAME]`` section as read: its raw items and where it came from."""

    name: str
    items: Dict[str, str]
    where: str


# Byte-order marks (UTF-32 LE starts like UTF-16 LE): editors on some systems add them.
_BYTE_ORDER_MARKS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE,
                     codecs.BOM_UTF32_BE)


def read_text(path: str) -> str:
    """The text of a UTF-8 file (a ``ReadFile``).

    Raises OSError when the file cannot be read, and ValueError, with the reason, when it is
    not UTF-8 text or starts with a byte-order mark (which would become part of the first key
    or of the token). The callers turn both into a ConfigError naming the file.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    if data.startswith(_BYTE_ORDER_MARKS):
        raise ValueError("it starts with a byte-order mark; save it as UTF-8 without one")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("it is not UTF-8 text (byte 0x%02x at offset %d)"
                         % (data[exc.start], exc.start)) from None


def environment_values(env: Mapping[str, str]) -> Dict[str, str]:
    """The ``JUPYTERHUB_IDLE_CULLER_*`` variables, by option name."""
    return {option.name: env[option.env_name] for option in OPTIONS
            if option.env_name and option.env_name in env}


def read_config_file(path: str, read_file: ReadFile) -> Tuple[Dict[str, Any], List[RuleSection]]:
    """Read a config file into raw option values and rule sections."""
    try:
        text = read_file(path)
    except OSError as exc:
        raise ConfigError("--config: cannot read %s: %s" % (path, exc.strerror or exc)) from None
    except ValueError as exc:
        raise ConfigError("--config: cannot read %s: %s" % (path, exc)) from None
    if path.endswith(".py"):
        return _python_config(text, path), []
    return _ini_config(text, path)


def _is_get_config(statement: ast.stmt) -> bool:
    """``c = get_config()``, the first line of every traitlets config file."""
    return (isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Call)
            and isinstance(statement.value.func, ast.Name)
            and statement.value.func.id == "get_config")


def _idle_culler_target(statement: ast.stmt) -> Optional[str]:
    """The ``<name>`` of a ``c.IdleCuller.<name> = ...`` statement, else None."""
    if not isinstance(statement, ast.Assign) or len(statement.targets) != 1:
        return None
    target = statement.targets[0]
    if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute)
            and target.value.attr == "IdleCuller" and isinstance(target.value.value, ast.Name)
            and target.value.value.id == "c"):
        return target.attr
    return None


def _python_config(text: str, path: str) -> Dict[str, Any]:
    """Read ``c.IdleCuller.<name> = <literal>`` lines of a traitlets file without running it."""
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
        key = _idle_culler_target(statement)
        if key is None:
            raise ConfigError("%s: only 'c.IdleCuller.<name> = <literal>' assignments are read "
                              "from .py files" % where)
        option = file_option(key)
        if option is None:
            raise ConfigError("%s: unknown option %r" % (where, key))
        try:
            values[option.name] = ast.literal_eval(statement.value)
        except ValueError:
            raise ConfigError("%s: the value of %s must be a literal" % (where, key)) from None
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
                    raise ConfigError("config file %s: [culler]: unknown key %r" % (path, key))
                values[option.name] = raw
        elif section.startswith("rule:") and section[5:].strip():
            rules.append(RuleSection(section[5:].strip(), dict(parser.items(section)),
                                     "config file %s: [%s]" % (path, section)))
        else:
            raise ConfigError("config file %s: unknown section [%s] (expected [culler] or "
                              "[rule:NAME])" % (path, section))
    return values, rules


def read_token(token_file: Optional[str], env: Mapping[str, str], read_file: ReadFile) -> str:
    """Find the API token: --api-token-file, then $CREDENTIALS_DIRECTORY, then the env var."""
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
            return check_token(token, "%s: %s" % (what, path))
        if required:
            raise ConfigError("%s: %s is empty" % (what, path))
    token = env.get("JUPYTERHUB_API_TOKEN", "").strip()
    if token:
        return check_token(token, "$JUPYTERHUB_API_TOKEN")
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
