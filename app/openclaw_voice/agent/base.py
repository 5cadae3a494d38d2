"""The agent interface: a conversation turn in, a stream of text deltas out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str
    # The speaker's display name for user messages (several people share a channel).
    name: str | None = None


@dataclass
class AgentSession:
    """One guild voice session's conversation, bounded by turns and characters.

    ``session_key`` identifies the conversation to the agent (OpenClaw's
    ``x-openclaw-session-key``), stable for a guild's voice session.
    """

    session_key: str
    guild_id: int | None = None
    max_turns: int = 20
    max_characters: int = 24_000
    history: list[Message] = field(default_factory=list)

    def remember(self, message: Message) -> None:
        self.history.append(message)
        # Drop whole oldest exchanges until both bounds hold again.
        while len(self.history) > 2 * self.max_turns or (
            sum(len(m.content) for m in self.history) > self.max_characters
            and len(self.history) > 1
        ):
            del self.history[0]

    def replace(self, old: Message, new: Message) -> None:
        """Put ``new`` where ``old`` is (the same object), if it is still remembered."""
        for index, message in enumerate(self.history):
            if message is old:
                self.history[index] = new
                return


@dataclass(frozen=True)
class AgentTurn:
    """What one user said, attributed."""

    text: str
    user_id: int
    display_name: str


@runtime_checkable
class Agent(Protocol):
    """Answers a turn as a stream of text deltas; raises ProviderError (stage AGENT).

    The implementation reads ``session.history`` for context but does not modify it: the
    pipeline records the turn and the reply actually spoken (which may be cut short by a
    barge-in).
    """

    name: str

    def reply(self, session: AgentSession, turn: AgentTurn) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...
