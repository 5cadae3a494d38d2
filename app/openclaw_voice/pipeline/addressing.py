"""Is an utterance meant for the bot? Wake-name matching and the addressing modes.

Speech recognisers mishear names ("OpenClaw" → "open claw", "open clock", "opencloud"),
so the wake name is matched fuzzily against runs of one to three words with their spaces
removed, using difflib's similarity ratio. ``auto`` mode (the default, as OpenClaw users
asked for) treats every utterance as addressed while one human is present and asks for
the wake name once there are more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

AddressingMode = Literal["auto", "wake", "open"]
DEFAULT_SIMILARITY = 0.7
_WORD = re.compile(r"[a-z0-9']+")
_LEADING_FILLER = {"hey", "hi", "ok", "okay", "yo", "hello", "so", "um", "uh"}


@dataclass(frozen=True)
class Addressing:
    """The decision for one utterance and the text to hand to the agent."""

    addressed: bool
    wake_name_heard: bool
    text: str


def _squash(text: str) -> str:
    return "".join(_WORD.findall(text.lower()))


def find_wake_name(
    text: str, wake_name: str, *, similarity: float = DEFAULT_SIMILARITY
) -> tuple[int, int] | None:
    """The (start, end) word span of the wake name in ``text``, or None."""
    target = _squash(wake_name)
    if not target:
        return None
    words = _WORD.findall(text.lower())
    best: tuple[float, int, int] | None = None
    for start in range(len(words)):
        for length in (1, 2, 3):
            end = start + length
            if end > len(words):
                break
            candidate = "".join(words[start:end])
            # Cheap length filter before the quadratic ratio.
            if abs(len(candidate) - len(target)) > max(2, len(target) // 3):
                continue
            score = SequenceMatcher(None, candidate, target).ratio()
            if score >= similarity and (best is None or score > best[0]):
                best = (score, start, end)
    return None if best is None else (best[1], best[2])


def strip_wake_name(text: str, span: tuple[int, int]) -> str:
    """Drop a leading greeting + wake name ("Hey OpenClaw, what's …" → "what's …")."""
    words = _WORD.findall(text.lower())
    start, end = span
    if any(word not in _LEADING_FILLER for word in words[:start]):
        return text.strip()  # the name is mid-sentence: keep the sentence whole
    tokens = text.split()
    # Map the word span back onto whitespace tokens (punctuation stays attached to words).
    consumed, index = 0, 0
    while index < len(tokens) and consumed < end:
        consumed += len(_WORD.findall(tokens[index].lower())) or 0
        index += 1
    rest = " ".join(tokens[index:]).lstrip(",.;:!? ")
    return rest or text.strip()


def decide(
    text: str,
    *,
    mode: AddressingMode,
    wake_name: str,
    humans_present: int,
    similarity: float = DEFAULT_SIMILARITY,
) -> Addressing:
    span = find_wake_name(text, wake_name, similarity=similarity)
    heard = span is not None
    cleaned = strip_wake_name(text, span) if span is not None else text.strip()
    if mode == "open" or (mode == "auto" and humans_present <= 1):
        return Addressing(True, heard, cleaned)
    return Addressing(heard, heard, cleaned)
