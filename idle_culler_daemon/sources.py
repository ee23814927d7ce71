"""Where option values come from: the environment, config files, the token's places.

Every function here turns one source into raw values (text, or literals from a ``.py`` file)
and names the source in its errors; converting and validating them is ``config``'s job. Files
are read through a ``read_file`` callable and the environment is a mapping passed in, so this
module never touches ``os.environ`` and tests need no real files.
"""

import codecs
import configparser
import os
import pwd
import stat
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from idle_culler_daemon.errors import ConfigError
from idle_culler_daemon.options import (
    DEFAULT_CONFIG_FILE,
    ENV_PREFIX,
    OPTIONS,
    did_you_mean,
    env_names,
    file_option,
)
from idle_culler_daemon.pyconfig import RuleSection, read_python_config

# Raises OSError, UntrustedFile (see check_owner), or ValueError for a file that is not text.
ReadFile = Callable[[str], str]
TOKEN_CREDENTIAL = "api-token"  # the name of the systemd credential (LoadCredential=)
MIN_TOKEN_LENGTH = 8  # JupyterHub refuses shorter tokens
_CHARACTER_NAMES = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab",
                    " ": "a space", "\ufeff": "a byte-order mark (U+FEFF)"}
BOM = "\ufeff"
# Read when present and no --config is given, the first found: the reference's traitlets file
# from the working directory (as the reference reads it), then the packaged location.
WORKING_DIRECTORY_CONFIG = "idle_culler_config.py"
DEFAULT_CONFIG_FILES = (WORKING_DIRECTORY_CONFIG, DEFAULT_CONFIG_FILE)
# A culler's config file is a few KB, its token a few dozen bytes: more is refused unread.
MAX_FILE_BYTES = 1 << 20


class UntrustedFile(ValueError):
    """A file that someone other than the culler's user or root could have written."""


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _user(uid: int) -> str:
    name = _name(uid)
    return "uid %d" % uid if name == str(uid) else "uid %d (%s)" % (uid, name)


def check_owner(info: os.stat_result, path: str) -> None:
    """Refuse (UntrustedFile) a file not owned by the culler's user or root, or writable by its
    group or by others: as ssh treats ``authorized_keys``, since such a file may set where the
    token is read from and where it is sent."""
    euid = os.geteuid()
    problems, fixes = [], []
    if info.st_uid not in (euid, 0):
        problems.append("it is owned by %s, not by root or the culler's user (%s)"
                        % (_user(info.st_uid), _name(euid)))
        fixes.append("chown %s %s" % (_name(euid), path))
    writable = [who for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH))
                if info.st_mode & bit]
    if writable:
        problems.append("it is writable by %s" % " and ".join(writable))
        fixes.append("chmod go-w %s" % path)
    if problems:
        raise UntrustedFile(
            "owner %s, mode %04o: %s, so another user could have written it (if it is the "
            "intended file: %s)" % (_user(info.st_uid), stat.S_IMODE(info.st_mode),
                                    "; ".join(problems), ", ".join(fixes)))


# Byte-order marks of UTF-16 and UTF-32 (UTF-32 LE starts like UTF-16 LE): such a file is not
# UTF-8. A UTF-8 byte-order mark stays in the text: a config file drops it (editors on some
# systems write one), a token refuses it (see check_token).
_OTHER_BYTE_ORDER_MARKS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_BE)


def read_text(path: str) -> str:
    """The text of a UTF-8 file (a ``ReadFile``) that only the culler's user or root can write.

    Raises OSError when the file cannot be read, UntrustedFile when someone else could have
    written it (``check_owner``, on the opened file: what is read is what was checked), and
    ValueError, with the reason, when it is larger than ``MAX_FILE_BYTES`` or not UTF-8 text.
    The callers turn these into a ConfigError naming the file, or skip an untrusted file that
    nobody named (``read_config_file``).
    """
    with open(path, "rb") as handle:
        check_owner(os.fstat(handle.fileno()), path)
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError("it is larger than 1 MiB (a culler's file is a few KB)")
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


def read_config_file(path: str, read_file: ReadFile, required: bool = True,
                     warnings: Optional[List[str]] = None
                     ) -> Optional[Tuple[Dict[str, Any], List[RuleSection]]]:
    """Read a config file into raw option values and rule sections.

    A file that does not exist is an error when ``required``, else None (a default file).
    A file that fails ``check_owner`` is an error, except the working directory's default
    file, which anyone who can write to that directory could have put there: that one is
    skipped (None) with a warning added to ``warnings``.
    """
    try:
        text = read_file(path)
    except FileNotFoundError:
        if not required:
            return None
        raise ConfigError("--config: cannot read %s: no such file" % path) from None
    except UntrustedFile as exc:
        if required or path != WORKING_DIRECTORY_CONFIG or warnings is None:
            raise ConfigError("config file %s is not obeyed: %s" % (path, exc)) from None
        warnings.append("config file %s in the working directory is ignored: %s"
                        % (path, exc))
        return None
    except OSError as exc:
        raise ConfigError("--config: cannot read %s: %s" % (path, exc.strerror or exc)) from None
    except UnicodeDecodeError as exc:  # from a reader that decodes for itself
        raise ConfigError("config file %s is not UTF-8 text (byte 0x%02x at offset %d)"
                          % (path, exc.object[exc.start], exc.start)) from None
    except ValueError as exc:  # read_text's own: too large, not UTF-8 text
        raise ConfigError("--config: cannot read %s: %s" % (path, exc)) from None
    if len(text) > MAX_FILE_BYTES:  # from a reader that does not bound it
        raise ConfigError("--config: cannot read %s: it is larger than 1 MiB" % path)
    if text.startswith(BOM):  # editors on some systems write one; it is not part of the text
        text = text[len(BOM):]
    if path.endswith(".py"):
        return read_python_config(text, path)
    return _ini_config(text, path)


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


def read_token(token_file: Optional[str], env: Mapping[str, str], read_file: ReadFile) -> str:
    """Find the API token: --api-token-file, then $CREDENTIALS_DIRECTORY, then the env var."""
    return find_token(token_file, env, read_file)[0]


def find_token(token_file: Optional[str], env: Mapping[str, str], read_file: ReadFile
               ) -> Tuple[str, str]:
    """The API token and where it was found (for ``--show-config``), as ``read_token``."""
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
