"""Typed errors of the voice path, numbered by stage as in the spec.

3xxx audio, 4xxx speech-to-text, 5xxx text-to-speech, 6xxx pipeline, 7xxx agent. Each
carries a user-facing message (what the bot may say) and whether trying again can help;
the pipeline, not the provider, decides what the user hears.
"""

from __future__ import annotations

from enum import Enum, IntEnum


class Stage(IntEnum):
    """The thousands digit of an error code."""

    AUDIO = 3000
    STT = 4000
    TTS = 5000
    PIPELINE = 6000
    AGENT = 7000


class ErrorKind(Enum):
    """What went wrong, independent of the stage; value = (offset, retryable, message)."""

    TIMEOUT = (1, True, "That took too long.")
    RATE_LIMITED = (2, True, "I'm being rate limited right now.")
    UNAVAILABLE = (3, True, "The service I rely on is unavailable right now.")
    BAD_RESPONSE = (4, True, "I got a garbled answer from a service I rely on.")
    AUTH = (5, False, "I'm not allowed to use a service I rely on; an admin must check its key.")
    BAD_REQUEST = (6, False, "A service I rely on refused my request.")
    EMPTY_RESULT = (7, False, "I didn't catch that. Could you please repeat?")
    EMPTY_INPUT = (8, False, "I didn't hear anything.")
    INPUT_TOO_LONG = (9, False, "That was too long for me to handle at once.")
    NOT_CONFIGURED = (10, False, "That service is not set up.")

    @property
    def offset(self) -> int:
        return self.value[0]

    @property
    def retryable(self) -> bool:
        return self.value[1]

    @property
    def user_message(self) -> str:
        return self.value[2]


class VoiceError(Exception):
    """Base of every error the voice path reports with a code."""

    def __init__(self, stage: Stage, kind: ErrorKind, detail: str) -> None:
        super().__init__(detail)
        self.stage = stage
        self.kind = kind
        self.detail = detail

    @property
    def code(self) -> int:
        return int(self.stage) + self.kind.offset

    @property
    def retryable(self) -> bool:
        return self.kind.retryable

    @property
    def user_message(self) -> str:
        return self.kind.user_message

    def __str__(self) -> str:
        return f"[{self.code}] {self.detail}"


class ProviderError(VoiceError):
    """A provider call failed; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(
        self,
        stage: Stage,
        kind: ErrorKind,
        provider: str,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(stage, kind, f"{provider}: {detail}")
        self.provider = provider
        self.status = status
        self.retry_after = retry_after


def kind_for_status(status: int) -> ErrorKind:
    """Map an HTTP status to an error kind the way every provider adapter should."""
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status in (408, 504):
        return ErrorKind.TIMEOUT
    if status == 413:
        return ErrorKind.INPUT_TOO_LONG
    if status >= 500:
        return ErrorKind.UNAVAILABLE
    return ErrorKind.BAD_REQUEST
