"""Secret redaction for logs and Sentry events.

One `Redactor` removes configured secret values and anything shaped like a credential
(Discord bot tokens, provider API keys, bearer tokens, URL credentials) from text and
nested data, and doubles as a structlog processor.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, MutableMapping
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote

REDACTED: Final = "[REDACTED]"

# Shorter "secrets" would shred ordinary text (a one-letter password would blank every "a").
MIN_SECRET_LENGTH: Final = 8

_B64URL = r"[A-Za-z0-9_-]"
# A credential glued to the end of a longer identifier is not a credential ("task-…").
_LEFT = r"(?<![A-Za-z0-9_-])"

# Shapes of credentials that are redacted whether or not they were configured. Prefix
# groups (named ``keep_*``) are kept so the reader still sees what was removed.
_SHAPES: Final = (
    # Discord bot token: base64(user id) . timestamp (exactly 6) . HMAC. The 6-character
    # middle segment between two dots is what keeps this from matching dotted identifiers.
    # The left boundary keeps long dot-free runs linear instead of quadratic.
    rf"{_LEFT}{_B64URL}{{24,}}\.{_B64URL}{{6}}\.{_B64URL}{{27,}}",
    # Legacy MFA user tokens.
    rf"{_LEFT}mfa\.{_B64URL}{{20,}}",
    # OpenAI-style keys (sk-…, sk-proj-…, sk-svcacct-…); the body must contain a digit so
    # hyphenated prose ("sk-this-is-just-some-words") survives.
    rf"{_LEFT}sk-(?=[A-Za-z0-9_-]*[0-9])[A-Za-z0-9_-]{{20,}}",
    # ElevenLabs keys.
    rf"{_LEFT}sk_[A-Za-z0-9]{{40,}}",
    # Google API keys.
    rf"{_LEFT}AIza[0-9A-Za-z_-]{{35,}}",
    # Bearer credentials in headers or their reprs.
    r"(?P<keep_bearer>(?i:\bbearer)\s+)[A-Za-z0-9._~+/=-]{16,}",
    # Credentials in URL userinfo, which is where a Sentry DSN keeps its key.
    r"(?<=://)[^/\s@:\"']+(?::[^/\s@\"']*)?(?=@)",
    # Key-valued parameters: query strings, headers, dict reprs, JSON.
    r"(?P<keep_param>(?i:(?<![A-Za-z0-9_-])(?:xi-api-key|x-api-key|api[_-]?key|access[_-]?token))"
    r"[\"']?\s*[=:]\s*[\"']?)[^\s&#\"',;}\]]+",
)
_KEEP_GROUPS: Final = ("keep_bearer", "keep_param")

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class Redactor:
    """Replaces secrets and credential-shaped strings with ``[REDACTED]``.

    Thread-safe: the compiled pattern is swapped atomically when a secret is added.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern = self._compile()
        self._add(secrets)

    def add_secret(self, value: str) -> None:
        """Redact ``value`` (and its URL- and JSON-escaped forms) from now on.

        Values shorter than `MIN_SECRET_LENGTH` characters are ignored.
        """
        self._add([value])

    def _add(self, values: Iterable[str]) -> None:
        variants: set[str] = set()
        for value in (v.strip() for v in values):
            if len(value) >= MIN_SECRET_LENGTH:
                # Secrets also turn up escaped: in URLs and in JSON bodies quoted in errors.
                variants |= {value, quote(value, safe=""), json.dumps(value)[1:-1]}
        with self._lock:
            if variants <= self._secrets:
                return
            self._secrets |= variants
            self._pattern = self._compile()

    def _compile(self) -> re.Pattern[str]:
        # Longest first so a secret that contains another is removed whole.
        literals = [re.escape(s) for s in sorted(self._secrets, key=len, reverse=True)]
        return re.compile("|".join([*literals, *_SHAPES]))

    @staticmethod
    def _replace(match: re.Match[str]) -> str:
        for group in _KEEP_GROUPS:
            kept = match.group(group)
            if kept is not None:
                return kept + REDACTED
        return REDACTED

    def redact_text(self, text: str) -> str:
        """Return ``text`` with every secret and credential-shaped substring replaced."""
        return self._pattern.sub(self._replace, text)

    def redact(self, obj: object) -> object:
        """Redact strings inside ``obj``, recursing into dicts, lists, tuples and sets.

        Exceptions become their redacted ``str``; other objects are returned unchanged.
        """
        return self._redact(obj, _keep_object, set())

    def _redact(self, obj: object, leaf: Callable[[object], object], path: set[int]) -> object:
        if isinstance(obj, str):
            return self.redact_text(obj)
        if isinstance(obj, int | float | bool | None):
            return obj
        if isinstance(obj, BaseException):
            return self.redact_text(safe_str(obj))
        if isinstance(obj, dict | list | tuple | set | frozenset):
            if id(obj) in path:
                # A self-referencing structure would recurse forever; nothing new lies inside.
                return "[CYCLE]"
            path.add(id(obj))
            try:
                return self._redact_container(obj, leaf, path)
            finally:
                path.discard(id(obj))
        converted = leaf(obj)
        return self.redact_text(converted) if isinstance(converted, str) else converted

    def _redact_container(
        self,
        obj: dict[Any, Any] | list[Any] | tuple[Any, ...] | set[Any] | frozenset[Any],
        leaf: Callable[[object], object],
        path: set[int],
    ) -> object:
        if isinstance(obj, dict):
            return {
                self._redact(k, leaf, path): self._redact(v, leaf, path) for k, v in obj.items()
            }
        items = [self._redact(item, leaf, path) for item in obj]
        if isinstance(obj, list):
            return items
        if isinstance(obj, tuple):
            return tuple(items)
        return type(obj)(items)

    def __call__(
        self, logger: object, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """structlog processor: redact every field, rendering ``exc_info`` first.

        Objects other than plain data become their ``repr`` before redaction, because a
        renderer would otherwise print that repr unredacted. Keys starting with ``_``
        are structlog internals (``_record``) and pass through untouched.
        """
        if "exc_info" in event_dict:
            exc_info = resolve_exc_info(event_dict.pop("exc_info"))
            if exc_info is not None:
                event_dict["exception"] = "".join(traceback.format_exception(*exc_info))
        for key, value in list(event_dict.items()):
            if key.startswith("_"):
                continue
            event_dict[key] = self._redact(value, repr, set())
        return event_dict


def _keep_object(obj: object) -> object:
    return obj


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, or a placeholder when the exception cannot print itself."""
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not take logging down with it
        return f"<unprintable {type(exc).__name__}>"


def resolve_exc_info(value: object) -> _ExcInfo | None:
    """Normalise structlog's ``exc_info`` (True, an exception or a tuple) to a tuple."""
    if isinstance(value, BaseException):
        return (type(value), value, value.__traceback__)
    if isinstance(value, tuple):
        if len(value) == 3 and isinstance(value[1], BaseException):
            return (type(value[1]), value[1], value[2])
        return None
    if value:
        current = sys.exc_info()
        if current[1] is not None:
            return (type(current[1]), current[1], current[2])
    return None
