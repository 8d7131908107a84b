"""Take credentials out of text before it leaves the process (answers, logs, banners).

Registry URIs carry credentials (``http://user:pw@host``, ``postgresql://u:pw@db/x``,
presigned ``?X-Amz-Signature=...``), and MLflow's and requests' exception texts quote
those URLs. Pure string work: structural patterns (URL userinfo, credential-named
``name=value`` pairs, ``Authorization``/``Bearer`` values) plus the literal values of the
secrets this process was configured with, which can appear anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, unquote, urlsplit

MASK = "***"
# Literal secrets shorter than this are not searched for as plain text (replacing every
# "ab" in a log would garble it); the structural patterns still catch them.
MIN_LITERAL_CHARS = 4

# scheme://userinfo@ -- the greedy userinfo runs to the last '@' before the path, so a
# password with an unescaped '@' is covered too.
_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/?#@]*(?:@[^\s/?#@]*)*)@"
)
# name=value (or a quoted 'name': value, as in JSON and dict reprs) where a component of
# the name says it is a credential: token, password, secret, key, sig... (query strings,
# DSNs, env-style NAME=value).
_WORDS = (
    "token|password|passwd|passphrase|pwd|pass|secret|key|apikey|sig|signature|credential|"
    "credentials|auth|authorization|session|sas|jwt"
)
_PAIR = re.compile(
    r"(?P<name>(?<![A-Za-z0-9])(?:[A-Za-z0-9]+[_.\-])*(?:" + _WORDS + r")(?:[_.\-][A-Za-z0-9]+)*)"
    r"(?P<sep>\s*=\s*|['\"]\s*[=:]\s*)"
    r"(?P<value>'[^'\n]*'|\"[^\"\n]*\"|[^\s&#\"]+)",
    re.IGNORECASE,
)
# Bearer and Basic credentials wherever they appear (headers echoed in errors).
_SCHEME_CREDENTIAL = re.compile(
    r"\b(?P<scheme>Bearer)\s+(?P<value>[^\s'\"<>]{4,})|\b(?P<basic>Basic)\s+[A-Za-z0-9+/]{8,}=*",
    re.IGNORECASE,
)
# Environment variables whose values are secrets wherever they appear.
SECRET_ENV_VARS = (
    "STAGESERVE_ADMIN_TOKEN",
    "STAGESERVE_WEBHOOK_SECRET",
    "STAGESERVE_REQUEST_ID_KEY",
    "STAGESERVE_FEEDBACK_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "DATABRICKS_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
)
# Settings holding URIs whose userinfo password is a secret too.
URI_ENV_VARS = ("STAGESERVE_REGISTRY_URI", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
# Settings naming a file whose content is a secret (a mounted Kubernetes secret).
SECRET_FILE_ENV_VARS = (
    "STAGESERVE_ADMIN_TOKEN_FILE",
    "STAGESERVE_WEBHOOK_SECRET_FILE",
    "STAGESERVE_REQUEST_ID_KEY_FILE",
    "STAGESERVE_FEEDBACK_TOKEN_FILE",
)
# A secret file holds a token, not a document: reading stops past this many characters.
MAX_SECRET_FILE_CHARS = 65536


def _mask_pair(match: re.Match[str]) -> str:
    value = match.group("value")
    quoted = len(value) > 1 and value[0] in "'\"" and value[-1] == value[0]
    quote_char = value[0] if quoted else ""
    if value.strip(quote_char) == MASK:
        return match.group(0)
    return f"{match.group('name')}{match.group('sep')}{quote_char}{MASK}{quote_char}"


def _mask_scheme(match: re.Match[str]) -> str:
    return f"{match.group('scheme') or match.group('basic')} {MASK}"


def redact_structures(text: str) -> str:
    """Mask URL userinfo, credential-named ``name=value`` pairs and auth-scheme values."""
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    text = _SCHEME_CREDENTIAL.sub(_mask_scheme, text)
    return _PAIR.sub(_mask_pair, text)


def redact_url(url: str | None) -> str | None:
    """A URL (or database URI) fit to show: no userinfo, no credential query values."""
    if url is None:
        return None
    return redact_structures(url)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Any text fit to show: structures masked, and every literal secret replaced."""
    for secret in sorted(_literal_forms(secrets), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return redact_structures(text)


def _literal_forms(secrets: Iterable[str]) -> set[str]:
    """Each secret as written, percent-encoded and percent-decoded (URLs carry either)."""
    forms: set[str] = set()
    for secret in secrets:
        for form in (secret, quote(secret, safe=""), unquote(secret)):
            if len(form) >= MIN_LITERAL_CHARS:
                forms.add(form)
    return forms


def uri_password(uri: str | None) -> str | None:
    """The password in a URI's userinfo (or a lone token as userinfo), if any."""
    if not uri or "://" not in uri:
        return None
    try:
        parts = urlsplit(uri)
        password = parts.password or (parts.username if "@" in parts.netloc else None)
    except ValueError:
        return None
    return password or None


def read_secret_file(path: str) -> str:
    """The secret a file holds: its text without surrounding whitespace ("" if none).

    Raises OSError or UnicodeError when it cannot be read, ValueError when it holds more
    than MAX_SECRET_FILE_CHARS (a wrong path, not a secret).
    """
    with open(path, encoding="utf-8") as file:
        text = file.read(MAX_SECRET_FILE_CHARS + 1)
    if len(text) > MAX_SECRET_FILE_CHARS:
        raise ValueError(f"holds more than {MAX_SECRET_FILE_CHARS} characters")
    return text.strip()


def _file_secrets(env: Mapping[str, str]) -> list[str]:
    """The secrets of the files the environment names; a file that cannot be read is
    skipped here (the settings refuse it at start)."""
    found = []
    for name in SECRET_FILE_ENV_VARS:
        path = env.get(name, "").strip()
        try:
            secret = read_secret_file(path) if path else ""
        except (OSError, ValueError):  # UnicodeError is a ValueError
            continue
        if secret:
            found.append(secret)
    return found


def configured_secrets(env: Mapping[str, str]) -> tuple[str, ...]:
    """The secret values a process with this environment may hold."""
    found = [env[name].strip() for name in SECRET_ENV_VARS if env.get(name, "").strip()]
    found += _file_secrets(env)
    found += [p for name in URI_ENV_VARS if (p := uri_password(env.get(name)))]
    return tuple(dict.fromkeys(found))


class Redactor:
    """``redact_text`` bound to one process's configured secrets."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(secrets)

    def __call__(self, text: str) -> str:
        return redact_text(text, self.secrets)

    def tree(self, value: object) -> object:
        """Every string inside dicts/lists/tuples redacted (JSON documents)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {key: self.tree(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.tree(item) for item in value]
        return value


_process = Redactor()


def configure(secrets: Iterable[str]) -> None:
    """Set the secrets of this process (the gateway does it once, at start)."""
    global _process
    _process = Redactor(secrets)


def redact(text: str) -> str:
    """``redact_text`` with this process's configured secrets."""
    return _process(text)


def redact_tree(value: object) -> object:
    return _process.tree(value)
