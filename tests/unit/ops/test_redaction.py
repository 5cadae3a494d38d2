"""Redactor: configured secrets and credential shapes go, ordinary text stays."""

from __future__ import annotations

import base64
import json
import sys
from typing import Any
from urllib.parse import quote

import pytest

from openclaw_voice.ops.redaction import (
    MIN_SECRET_LENGTH,
    REDACTED,
    Redactor,
    resolve_exc_info,
    safe_str,
)

SECRET = "sentinel-Secret-Value-42"
# Built at run time so the source holds no scanner-bait literal; shapes match real ones.
_USER_ID = base64.b64encode(b"123456789012345678").decode().rstrip("=")
DISCORD_TOKEN = f"{_USER_ID}.GaBcDe.{'Zx9_-aB3' * 4}abcdef"
OPENAI_KEY = "sk-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
OPENAI_PROJECT_KEY = "sk-proj-" + "Ab3_Cd4-Ef5Gh6" * 8
ELEVENLABS_KEY = "sk_" + "0123456789abcdef" * 3
GOOGLE_KEY = "AIza" + "SyD-1234567890abcdefghijklmnopqrstu"
SENTRY_KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def redactor() -> Redactor:
    return Redactor([SECRET])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token {DISCORD_TOKEN} used", f"token {REDACTED} used"),
        (f"Authorization: Bot {DISCORD_TOKEN}", f"Authorization: Bot {REDACTED}"),
        (f"'{DISCORD_TOKEN}'", f"'{REDACTED}'"),
        ("mfa." + "x1Y2z3" * 12, REDACTED),
        (f"key={OPENAI_KEY}", f"key={REDACTED}"),
        (f'{{"k": "{OPENAI_PROJECT_KEY}"}}', f'{{"k": "{REDACTED}"}}'),
        (f"xi {ELEVENLABS_KEY}.", f"xi {REDACTED}."),
        (f"?key={GOOGLE_KEY}&alt=json", f"?key={REDACTED}&alt=json"),
        ("Authorization: Bearer gw-token-0123456789abcdef", f"Authorization: Bearer {REDACTED}"),
        ("authorization: bearer abc.def.ghi_jkl~mno", f"authorization: bearer {REDACTED}"),
        (
            f"https://{SENTRY_KEY}@o123.ingest.sentry.io/456",
            f"https://{REDACTED}@o123.ingest.sentry.io/456",
        ),
        ("http://user:pa55word@proxy:3128/", f"http://{REDACTED}@proxy:3128/"),
        ("GET /v1/tts?xi-api-key=abc123&voice=1", f"GET /v1/tts?xi-api-key={REDACTED}&voice=1"),
        ("/stt?api_key=zzz999#frag", f"/stt?api_key={REDACTED}#frag"),
        ("{'xi-api-key': 'abc123def'}", f"{{'xi-api-key': '{REDACTED}'}}"),
        ('{"api-key": "abc123def"}', f'{{"api-key": "{REDACTED}"}}'),
        ("X-Api-Key: abc123def", f"X-Api-Key: {REDACTED}"),
        ("access_token=abc.def", f"access_token={REDACTED}"),
        (f"prefix {SECRET} suffix", f"prefix {REDACTED} suffix"),
        (f"url?s={quote(SECRET + '/&', safe='')}", f"url?s={REDACTED}%2F%26"),
    ],
)
def test_redacts_secrets_and_credential_shapes(
    redactor: Redactor, text: str, expected: str
) -> None:
    assert redactor.redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "hello world",
        "guild 123456789012345678 user 987654321098765432",
        "task-management-system-overview-for-q3",
        "sk-this-is-just-some-words-here",
        "desk_0123456789abcdef0123456789abcdef01234567",
        "openclaw_voice.pipeline.turns.TurnTaker.handle_utterance",
        "version 1.2.3 build 2026.11.27",
        "a.b.c and abcdefghijklmnopqrstuvwxyz.abcdefg.abcdefghijklmnopqrstuvwxyz12",
        "email me at someone@example.com",
        "Bearer short",
        "tokens: 1200, api usage ok",
        "",
    ],
)
def test_leaves_ordinary_text_alone(redactor: Redactor, text: str) -> None:
    assert redactor.redact_text(text) == text


def test_short_and_empty_secrets_are_ignored() -> None:
    redactor = Redactor(["", "a", "x" * (MIN_SECRET_LENGTH - 1), "   "])
    assert redactor.redact_text("a cat and xxxxxxx") == "a cat and xxxxxxx"


def test_secret_containing_another_is_removed_whole() -> None:
    redactor = Redactor(["abcdefgh", "abcdefgh-and-more"])
    assert redactor.redact_text("x abcdefgh-and-more y") == f"x {REDACTED} y"


def test_json_escaped_secret_is_redacted() -> None:
    secret = 'quote"back\\slash'
    redactor = Redactor([secret])
    assert secret not in redactor.redact_text(json.dumps({"password": secret}))
    assert REDACTED in redactor.redact_text(json.dumps({"password": secret}))


def test_add_secret_learns_later_values(redactor: Redactor) -> None:
    late = "gateway-token-learned-late"
    assert redactor.redact_text(late) == late
    redactor.add_secret(late)
    redactor.add_secret(late)  # idempotent
    assert redactor.redact_text(f"x {late}") == f"x {REDACTED}"
    assert redactor.redact_text(SECRET) == REDACTED


def test_redact_recurses_through_containers(redactor: Redactor) -> None:
    error = RuntimeError(f"login failed with {DISCORD_TOKEN}")
    marker = object()
    data: dict[str, Any] = {
        "headers": {"Authorization": f"Bearer {SECRET}"},
        "list": [SECRET, 1, 2.5, True, None, ("t", SECRET)],
        "set": {SECRET},
        "frozen": frozenset({SECRET}),
        "error": error,
        SECRET: "key is secret too",
        "object": marker,
        "bytes": b"raw",
    }
    redacted = redactor.redact(data)
    assert redacted == {
        "headers": {"Authorization": f"Bearer {REDACTED}"},
        "list": [REDACTED, 1, 2.5, True, None, ("t", REDACTED)],
        "set": {REDACTED},
        "frozen": frozenset({REDACTED}),
        "error": f"login failed with {REDACTED}",
        REDACTED: "key is secret too",
        "object": marker,
        "bytes": b"raw",
    }
    assert SECRET in data["list"]  # the input is not mutated


def test_redact_survives_cycles(redactor: Redactor) -> None:
    data: dict[str, Any] = {"s": SECRET}
    data["self"] = data
    shared = [SECRET]
    assert redactor.redact(data) == {"s": REDACTED, "self": "[CYCLE]"}
    assert redactor.redact([shared, shared]) == [[REDACTED], [REDACTED]]


def test_exception_with_broken_str_is_still_redactable(redactor: Redactor) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert redactor.redact(Unprintable()) == "<unprintable Unprintable>"
    assert safe_str(ValueError(SECRET)) == SECRET


def test_processor_redacts_every_field_and_renders_exceptions(redactor: Redactor) -> None:
    class Holder:
        def __repr__(self) -> str:
            return f"Holder({SECRET})"

    record = object()
    try:
        raise ValueError(f"bad key {OPENAI_KEY}")
    except ValueError:
        event_dict: dict[str, Any] = {
            "event": f"connecting with {DISCORD_TOKEN}",
            "exc_info": True,
            "nested": {"k": [SECRET]},
            "holder": Holder(),
            "count": 3,
            "_record": record,
        }
        out = redactor(None, "error", event_dict)
    assert out["event"] == f"connecting with {REDACTED}"
    assert out["nested"] == {"k": [REDACTED]}
    assert out["holder"] == f"Holder({REDACTED})"
    assert out["count"] == 3
    assert out["_record"] is record
    assert "exc_info" not in out
    assert "Traceback" in out["exception"]
    assert f"ValueError: bad key {REDACTED}" in out["exception"]
    assert OPENAI_KEY not in json.dumps(out, default=str)


def test_processor_without_active_exception_drops_exc_info(redactor: Redactor) -> None:
    out = redactor(None, "info", {"event": "x", "exc_info": True})
    assert out == {"event": "x"}


def test_resolve_exc_info_forms() -> None:
    error = KeyError("k")
    assert resolve_exc_info(error) == (KeyError, error, None)
    assert resolve_exc_info((KeyError, error, None)) == (KeyError, error, None)
    assert resolve_exc_info((None, None, None)) is None
    assert resolve_exc_info(False) is None
    assert resolve_exc_info(None) is None
    try:
        raise error
    except KeyError:
        resolved = resolve_exc_info(True)
        assert resolved is not None
        assert resolved[1] is error
        assert resolved[2] is sys.exc_info()[2]


def test_long_inputs_stay_fast(redactor: Redactor) -> None:
    # Quadratic backtracking would make these take seconds; linear scanning is instant.
    blob = "A" * 200_000 + "." + "B" * 6 + "." + "C" * 100_000
    assert redactor.redact_text(blob) == REDACTED
    dotted = ("x" * 30 + ".") * 10_000
    assert redactor.redact_text(dotted) == dotted
