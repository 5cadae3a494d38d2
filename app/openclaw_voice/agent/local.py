"""The ``local`` agent: an offline responder with a few honest skills and no language model.

It tells the time and date, says hello, repeats what it is asked to, and says plainly that
it runs offline; anything else is echoed back ("You said: ..."), never answered with
made-up content. Replies stream word by word, like a real agent's deltas.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from openclaw_voice.agent.base import AgentSession, AgentTurn
from openclaw_voice.agent.prompt import display_name
from openclaw_voice.agent.usage import Outcome, UsageMeter, UsageObserver

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

_REPEAT = re.compile(r"\brepeat after me\b[\s,:;.!-]*(?P<rest>.*)", re.IGNORECASE | re.DOTALL)
_HELP = re.compile(
    r"\b(help|what can you do|what do you do|who are you|what are you|how do you work|"
    r"are you (offline|online|real|an? (ai|bot|robot))|can you hear me)\b"
)
_TIME = re.compile(r"\b(what time|the time|time is it|current time)\b")
_DATE = re.compile(
    r"\b(the date|today'?s date|date today|what day|which day|what is today|what'?s today)\b"
)
_HELLO = re.compile(r"\b(hello|hi|hey|howdy|greetings|good (morning|afternoon|evening))\b")
_THANKS = re.compile(r"\b(thanks|thank you)\b")

OFFLINE = (
    "I'm running offline, without a language model, so I can't answer questions or hold "
    "a conversation. I can tell you the time and the date, say hello, and repeat after you: "
    "say repeat after me, then the words."
)


def _time_of_day(moment: datetime) -> str:
    hour = moment.hour % 12 or 12
    suffix = "AM" if moment.hour < 12 else "PM"
    return f"{hour}:{moment.minute:02d} {suffix} {moment.tzname() or 'UTC'}"


def _date(moment: datetime) -> str:
    return f"{_DAYS[moment.weekday()]}, {_MONTHS[moment.month - 1]} {moment.day}, {moment.year}"


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith((".", "!", "?")) else f"{text}."


class LocalAgent:
    """Deterministic offline answers; ``timezone`` is an IANA name (default UTC)."""

    name = "local"

    def __init__(
        self,
        *,
        wake_name: str = "OpenClaw",
        timezone: str | None = None,
        now: Callable[[tzinfo], datetime] = datetime.now,
        usage_observer: UsageObserver | None = None,
    ) -> None:
        self.wake_name = wake_name
        self.zone: tzinfo = ZoneInfo(timezone) if timezone else UTC
        self._now = now
        self._usage_observer = usage_observer

    async def aclose(self) -> None:
        return None

    def answer(self, session: AgentSession, turn: AgentTurn) -> str:
        """The whole reply to ``turn`` (what :meth:`reply` streams)."""
        text = " ".join(turn.text.split())
        if not text:
            return "I didn't hear anything."
        for skill in (self._repeat, self._help, self._clock, self._courtesy):
            answer = skill(text, turn)
            if answer is not None:
                return answer
        answer = f"You said: {_sentence(text)}"
        if not any(message.role == "assistant" for message in session.history):
            # First exchange: say once why nothing smarter came back.
            answer += " I'm running offline, so I can only tell the time and date, say hello, "
            answer += "and repeat after you."
        return answer

    def _repeat(self, text: str, turn: AgentTurn) -> str | None:
        match = _REPEAT.search(text)
        if match is None:
            return None
        rest = match.group("rest").strip()
        if not rest:
            return "Say repeat after me, then the words you want me to say."
        return _sentence(rest)

    def _help(self, text: str, turn: AgentTurn) -> str | None:
        return f"I'm {self.wake_name}. {OFFLINE}" if _HELP.search(text.lower()) else None

    def _clock(self, text: str, turn: AgentTurn) -> str | None:
        lowered = text.lower()
        wants_time = _TIME.search(lowered) is not None
        wants_date = _DATE.search(lowered) is not None
        if not (wants_time or wants_date):
            return None
        moment = self._now(self.zone)
        if wants_time and wants_date:
            return f"It's {_time_of_day(moment)} on {_date(moment)}."
        if wants_time:
            return f"It's {_time_of_day(moment)}."
        return f"Today is {_date(moment)}."

    def _courtesy(self, text: str, turn: AgentTurn) -> str | None:
        lowered = text.lower()
        if _THANKS.search(lowered):
            return "You're welcome."
        if _HELLO.search(lowered):
            name = display_name(turn.display_name, fallback="there")
            return f"Hello, {name}! I'm {self.wake_name}, running offline."
        return None

    async def reply(self, session: AgentSession, turn: AgentTurn) -> AsyncGenerator[str, None]:
        meter = UsageMeter(self.name, "local", session.guild_id, self._usage_observer)
        outcome: Outcome = "failed"
        try:
            for word in re.findall(r"\S+\s*", self.answer(session, turn)):
                await asyncio.sleep(0)  # a real stream yields to the loop between deltas
                meter.text(word)
                yield word
            outcome = "completed"
        except (asyncio.CancelledError, GeneratorExit):
            outcome = "cancelled"
            raise
        finally:
            meter.report(outcome)
