"""In-process fake providers for load runs, with latency distributions and injected faults.

They run inside the bot's process behind the real fallback chains, TTS cache and metrics
observers (``tests/load/bot.py`` builds the same chains ``build_turn_runner`` does, from
these instead of the configured providers). In-process rather than the HTTP fakes:

- each turn's provider time is known exactly (the latency each fake was told to take),
  so ``overhead = e2e - endpointing - provider time`` is our code alone, per turn;
- the fakes cost a timer and a few yields per call, so the bot's CPU and memory are the
  bot's. The HTTP clients' own cost (2-7 ms per call, ``bench/bench_provider_overhead.py``)
  is therefore not in these figures.

Every fake keeps a :class:`TurnLedger` per guild (turns of a guild run one at a time):
the latencies it used and the faults it injected, which the harness compares with what
the pipeline reported. Latency samples and fault decisions come from one
``random.Random`` per guild and stage, seeded from the run's seed, so a guild's sequence
of decisions is reproducible (the TTS cache, shared by all guilds, decides which speech
requests reach the TTS fake, so TTS draws must not shift the other stages' draws).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from random import Random

import numpy as np

from openclaw_voice.agent.base import AgentSession, AgentTurn
from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.errors import ErrorKind, ProviderError
from openclaw_voice.stt.base import Transcript, TranscriptionRequest
from openclaw_voice.tts.base import SpeechRequest
from openclaw_voice.tts.text import SentenceChunker
from tests.load.profile import STAGES, Fault, FaultStage, LoadProfile

WAKE_NAME = "OpenClaw"
TTS_RATE = 24_000
CHUNK_SECONDS = 0.1
QUESTIONS = (
    "what is the weather like in Paris today",
    "turn on the lights in the kitchen please",
    "when does my next meeting start",
    "add milk and eggs to the shopping list",
    "how long does the train to Berlin take",
)
TEMPLATES = (
    "Order {n} ships on Tuesday morning.",
    "The kitchen lights in room {n} are on now.",
    "It is {n} degrees outside right now.",
    "Your next meeting starts in {n} minutes.",
    "I added {n} items to the shopping list.",
    "The train to Berlin leaves from platform {n}.",
)


def _tone_chunk() -> bytes:
    """100 ms of a 220 Hz tone at -12 dBFS, 24 kHz mono s16le (a whole number of periods)."""
    t = np.arange(int(TTS_RATE * CHUNK_SECONDS)) / TTS_RATE
    return (np.sin(2 * np.pi * 220 * t) * 0.25 * 32767).astype("<i2").tobytes()


TONE = _tone_chunk()


def tokens(text: str) -> list[str]:
    """Word deltas the way an LLM streams them (each word with its trailing space)."""
    return re.findall(r"\S+\s*", text)


def first_sentence_token(parts: list[str]) -> int:
    """Index of the token after which the pipeline's chunker has the first sentence."""
    chunker = SentenceChunker()
    for index, part in enumerate(parts):
        if chunker.feed(part):
            return index
    return len(parts) - 1  # one sentence: complete when the stream ends


async def sleep_until(deadline: float) -> None:
    """Wait for an absolute monotonic time (timer overshoots do not accumulate)."""
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


@dataclass
class TurnLedger:
    """What the fakes did during one guild's current turn."""

    stt: float = 0.0
    agent_first_sentence: float = 0.0
    tts_first_bytes: list[float] = field(default_factory=list)
    injected: list[tuple[str, int, bool]] = field(default_factory=list)  # stage, code, persistent
    decisions: dict[tuple[str, int], Fault | None] = field(default_factory=dict)
    attempts: Counter[tuple[str, int]] = field(default_factory=Counter)

    @property
    def provider_floor(self) -> float | None:
        """The providers' share of the time to first audio (None without a first sentence)."""
        if not self.tts_first_bytes:
            return None
        return self.stt + self.agent_first_sentence + self.tts_first_bytes[0]


class Ledgers:
    """Per-guild ledgers and random streams, plus totals over the run."""

    def __init__(self, profile: LoadProfile) -> None:
        self.profile = profile
        self._rngs: dict[tuple[int, str], Random] = {}
        self._turns: dict[int, TurnLedger] = {}
        self._counter = 0
        self.injected_by_code: Counter[int] = Counter()
        self.calls: Counter[str] = Counter()
        self.served: Counter[str] = Counter()  # successful calls, by provider name
        self.down: set[str] = set()  # stages whose first provider is in an outage

    def rng(self, guild_id: int | None, stage: FaultStage) -> Random:
        key = (guild_id or 0, stage)
        rng = self._rngs.get(key)
        if rng is None:
            rng = self._rngs[key] = Random(f"{self.profile.seed}:{key[0]}:{stage}")
        return rng

    def begin(self, guild_id: int) -> TurnLedger:
        ledger = self._turns[guild_id] = TurnLedger()
        return ledger

    def turn(self, guild_id: int | None) -> TurnLedger:
        """The guild's current turn (a call outside a turn gets a throwaway ledger)."""
        return self._turns.get(guild_id or 0) or TurnLedger()

    def next_number(self) -> int:
        self._counter += 1
        return self._counter

    def fault_for(self, guild_id: int | None, stage: FaultStage, key: int) -> Fault | None:
        """Whether this attempt at request ``key`` fails (decided once per request)."""
        ledger = self.turn(guild_id)
        self.calls[stage] += 1
        ledger.attempts[(stage, key)] += 1
        if (stage, key) not in ledger.decisions:
            chosen: Fault | None = None
            rng = self.rng(guild_id, stage)
            for fault in self.profile.faults:
                if fault.stage == stage and rng.random() < fault.rate:
                    chosen = fault
                    break
            ledger.decisions[(stage, key)] = chosen
        decided = ledger.decisions[(stage, key)]
        if decided is None or (not decided.persistent and ledger.attempts[(stage, key)] > 1):
            return None
        ledger.injected.append((stage, decided.code, decided.persistent))
        self.injected_by_code[decided.code] += 1
        return decided

    async def outage(self, guild_id: int | None, stage: FaultStage, provider: str) -> None:
        """Fail the call like a provider in an outage (a quick 503), when its stage is down.

        Counted like an injected transient fault: the fallback provider answers instead.
        """
        if stage not in self.down:
            return
        await asyncio.sleep(OUTAGE_LATENCY)
        code = int(STAGES[stage]) + ErrorKind.UNAVAILABLE.offset
        self.turn(guild_id).injected.append((stage, code, False))
        self.injected_by_code[code] += 1
        raise ProviderError(
            STAGES[stage], ErrorKind.UNAVAILABLE, provider, "outage (injected)", status=503
        )


HANG_SECONDS = 3600.0  # a "timeout" fault: longer than any attempt timeout
OUTAGE_LATENCY = 0.03  # a provider in an outage answers 503 at once
BACKUP_SUFFIX = "-backup"


async def _fail(fault: Fault, provider: str) -> None:
    """Raise the fault's error, or hang until the chain's attempt timeout cancels us."""
    if fault.error_kind is ErrorKind.TIMEOUT:
        await asyncio.sleep(HANG_SECONDS)
    raise _error(fault, provider)


def _error(fault: Fault, provider: str) -> ProviderError:
    return ProviderError(
        STAGES[fault.stage],
        fault.error_kind,
        provider,
        "injected fault",
        status=503 if fault.kind == "unavailable" else None,
    )


class LoadSpeechToText:
    """Answers after the sampled latency with one of a few questions, wake name first."""

    def __init__(self, ledgers: Ledgers, *, backup: bool = False) -> None:
        self.ledgers = ledgers
        self.backup = backup  # the stage's second provider: never in an outage
        self.name = "load-stt" + (BACKUP_SUFFIX if backup else "")

    async def transcribe(self, request: TranscriptionRequest) -> Transcript:
        guild = request.guild_id
        if not self.backup:
            await self.ledgers.outage(guild, "stt", self.name)
        started = time.monotonic()
        latency = self.ledgers.profile.providers.stt.sample(self.ledgers.rng(guild, "stt"))
        fault = self.ledgers.fault_for(guild, "stt", id(request))
        await sleep_until(started + latency)
        ledger = self.ledgers.turn(guild)
        ledger.stt += latency
        if fault is not None:
            await _fail(fault, self.name)
        question = QUESTIONS[self.ledgers.rng(guild, "stt").randrange(len(QUESTIONS))]
        self.ledgers.served[self.name] += 1
        return Transcript(
            f"{WAKE_NAME}, {question}", self.name, request.audio.duration_seconds, "en", 0.95
        )

    async def aclose(self) -> None:
        return None


class LoadAgent:
    """Streams a fresh one- or two-sentence answer: first token, then a token every gap."""

    def __init__(self, ledgers: Ledgers, *, backup: bool = False) -> None:
        self.ledgers = ledgers
        self.backup = backup  # the stage's second provider: never in an outage
        self.name = "load-agent" + (BACKUP_SUFFIX if backup else "")

    def _answer(self, guild: int | None) -> str:
        rng = self.ledgers.rng(guild, "agent")
        low, high = self.ledgers.profile.providers.sentences
        return " ".join(
            rng.choice(TEMPLATES).format(n=self.ledgers.next_number())
            for _ in range(rng.randint(low, high))
        )

    async def reply(self, session: AgentSession, turn: AgentTurn) -> AsyncIterator[str]:
        guild = session.guild_id
        if not self.backup:
            await self.ledgers.outage(guild, "agent", self.name)
        profile = self.ledgers.profile.providers
        rng = self.ledgers.rng(guild, "agent")
        started = time.monotonic()
        first = profile.agent_first_token.sample(rng)
        gap = profile.token_gap.sample(rng)
        fault = self.ledgers.fault_for(guild, "agent", id(turn))
        await sleep_until(started + first)
        ledger = self.ledgers.turn(guild)
        if fault is not None:
            await _fail(fault, self.name)
        parts = tokens(self._answer(guild))
        self.ledgers.served[self.name] += 1
        ledger.agent_first_sentence = first + first_sentence_token(parts) * gap
        for index, part in enumerate(parts):
            if index:
                await sleep_until(started + first + index * gap)
            yield part

    async def aclose(self) -> None:
        return None


class LoadTextToSpeech:
    """A tone as long as the text would take to say, streamed faster than real time."""

    def __init__(self, ledgers: Ledgers, *, backup: bool = False) -> None:
        self.ledgers = ledgers
        self.backup = backup  # the stage's second provider: never in an outage
        self.name = "load-tts" + (BACKUP_SUFFIX if backup else "")

    async def synthesize(self, request: SpeechRequest) -> AsyncIterator[PcmAudio]:
        guild = request.guild_id
        if not self.backup:
            await self.ledgers.outage(guild, "tts", self.name)
        profile = self.ledgers.profile.providers
        started = time.monotonic()
        first = profile.tts_first_byte.sample(self.ledgers.rng(guild, "tts"))
        fault = self.ledgers.fault_for(guild, "tts", id(request))
        ledger = self.ledgers.turn(guild)
        if fault is None:
            ledger.tts_first_bytes.append(first)
        await sleep_until(started + first)
        if fault is not None:
            await _fail(fault, self.name)
        self.ledgers.served[self.name] += 1
        seconds = len(request.text) * profile.speech_ms_per_char / 1000
        chunks = max(1, round(seconds / CHUNK_SECONDS))
        step = CHUNK_SECONDS / profile.tts_speed
        for index in range(chunks):
            if index:
                await sleep_until(started + first + index * step)
            yield PcmAudio(TONE, TTS_RATE, 1)

    async def aclose(self) -> None:
        return None
