"""The chat messages every OpenAI-compatible agent gets: spoken-answer prompt, roster, history."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

from openai.types.chat import ChatCompletionMessageParam, ChatCompletionUserMessageParam

from openclaw_voice.agent.base import AgentSession, AgentTurn, Message

# OpenAI's documented pattern for a message's ``name``; stricter than some servers need.
_API_NAME_DISALLOWED = re.compile(r"[^A-Za-z0-9_-]+")
_API_NAME_MAX = 64
_DISPLAY_NAME_MAX = 64
_WHITESPACE = re.compile(r"\s+")

SYSTEM_PROMPT = (
    "You are {wake_name}, an assistant taking part in a Discord voice channel. Everything "
    "you write is read aloud by a speech synthesizer, so answer the way a person talks: "
    "briefly (one to three short sentences unless asked for more), in plain sentences, with "
    "no markdown, no lists or headings, no code, no emoji and no links. Several people can "
    "share the channel: each of their messages starts with the speaker's name and a colon. "
    "Speech recognition can mishear words; if a request is unclear, ask a short question."
)


def display_name(raw: str, fallback: str = "Someone") -> str:
    """A speaker's name safe to put in a prompt: one line, no control characters, bounded."""
    text = unicodedata.normalize("NFKC", raw)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    text = _WHITESPACE.sub(" ", text).strip(" :")[:_DISPLAY_NAME_MAX].strip()
    return text or fallback


def api_name(raw: str) -> str | None:
    """The ``name`` field for a display name (``[A-Za-z0-9_-]{1,64}``), None if nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii")
    name = _API_NAME_DISALLOWED.sub("_", ascii_text).strip("_")[:_API_NAME_MAX]
    return name or None


def bounded_history(session: AgentSession) -> list[Message]:
    """The most recent history within the session's turn and character bounds.

    The session bounds its history when the pipeline records it; applying the same bounds
    here keeps the request bounded even if the history was filled some other way.
    """
    recent = session.history[-2 * session.max_turns :] if session.max_turns > 0 else []
    total = sum(len(message.content) for message in recent)
    start = 0
    while start < len(recent) and total > session.max_characters:
        total -= len(recent[start].content)
        start += 1
    return recent[start:]


def roster(session: AgentSession, turn: AgentTurn) -> list[str]:
    """Speakers of this conversation in order of first appearance, the current one included."""
    names: list[str] = []
    for message in session.history:
        if message.role == "user" and message.name:
            names.append(display_name(message.name))
    names.append(_turn_name(turn))
    return list(dict.fromkeys(names))


def _turn_name(turn: AgentTurn) -> str:
    return display_name(turn.display_name, fallback=f"User {turn.user_id}")


def _attributed(name: str, content: str) -> str:
    prefix = f"{name}: "
    return content if content.startswith(prefix) else prefix + content


def _user_message(name: str | None, content: str) -> ChatCompletionUserMessageParam:
    if name is None:
        return {"role": "user", "content": content}
    shown = display_name(name)
    message: ChatCompletionUserMessageParam = {
        "role": "user",
        "content": _attributed(shown, content),
    }
    field = api_name(name)
    if field is not None:
        message["name"] = field
    return message


def _history_messages(history: Iterable[Message]) -> list[ChatCompletionMessageParam]:
    messages: list[ChatCompletionMessageParam] = []
    for message in history:
        if message.role == "user":
            messages.append(_user_message(message.name, message.content))
        elif message.role == "assistant":
            messages.append({"role": "assistant", "content": message.content})
        else:
            messages.append({"role": "system", "content": message.content})
    return messages


def system_prompt(wake_name: str, speakers: Sequence[str]) -> str:
    """The system message: how to answer for speech, and who is in the conversation."""
    return (
        SYSTEM_PROMPT.format(wake_name=wake_name)
        + "\n\nPeople in this conversation so far: "
        + ", ".join(speakers)
        + "."
    )


def build_messages(
    session: AgentSession, turn: AgentTurn, *, wake_name: str
) -> list[ChatCompletionMessageParam]:
    """System prompt with roster, the bounded history, then the new attributed user message."""
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": system_prompt(wake_name, roster(session, turn))}
    ]
    messages.extend(_history_messages(bounded_history(session)))
    current = _user_message(_turn_name(turn), turn.text)
    if "name" not in current:
        # A name with nothing left after sanitising still gets a stable identifier.
        current["name"] = f"user_{turn.user_id}"
    messages.append(current)
    return messages
