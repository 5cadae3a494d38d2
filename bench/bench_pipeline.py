"""Pipeline overhead at 1-100 concurrent sessions, and sentence streaming vs whole replies.

Providers are in-process stand-ins with fixed latencies (STT 300 ms, agent first token
400 ms then 20 ms per token, TTS first byte 150 ms), so what is left of the end-to-end
time is our own code: chains, chunking, prefetching, queues, the event loop.

    .venv/bin/python -m bench.bench_pipeline [--turns 5] [--sessions 1,10,50,100]
        [--log-level warning]

Logs are configured as in production (JSON, production's default level ``warning``;
``--log-level info`` as in staging, where every turn writes a line).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import time
from collections.abc import AsyncIterable, AsyncIterator

from openclaw_voice.agent.base import AgentSession, AgentTurn
from openclaw_voice.audio.packets import Utterance
from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.errors import Stage
from openclaw_voice.ops.logging import configure_logging
from openclaw_voice.ops.redaction import Redactor
from openclaw_voice.pipeline.turn import TurnOutcome, TurnRequest, TurnRunner
from openclaw_voice.resilience import FallbackChain, RetryPolicy
from openclaw_voice.stt.base import Transcript, TranscriptionRequest
from openclaw_voice.tts.base import SpeechRequest
from openclaw_voice.tts.text import SentenceChunker

STT_SECONDS, AGENT_FIRST_TOKEN, TOKEN_GAP, TTS_FIRST_BYTE = 0.300, 0.400, 0.020, 0.150
ANSWER = (
    "It is a quarter past eight in the evening. The kitchen lights are on, and the front "
    "door is locked. Anything else I can do for you?"
)


def tokens_until_first_sentence() -> int:
    """How many tokens the agent must have sent before the first sentence is complete."""
    chunker = SentenceChunker()
    for index, word in enumerate(ANSWER.split(" ")):
        if chunker.feed(word if index == 0 else f" {word}"):
            return index + 1
    raise AssertionError("the answer has a single sentence")


# The providers' own share of the time to first audio: transcription, the agent's first
# token and the rest of its first sentence, and the first byte of that sentence's speech.
PROVIDER_FLOOR = (
    STT_SECONDS
    + AGENT_FIRST_TOKEN
    + (tokens_until_first_sentence() - 1) * TOKEN_GAP
    + TTS_FIRST_BYTE
)
CHUNK = PcmAudio(bytes(960), 24_000)  # 20 ms of 24 kHz mono


class FixedStt:
    name = "fixed"

    async def transcribe(self, request: TranscriptionRequest) -> Transcript:
        await asyncio.sleep(STT_SECONDS)
        return Transcript("what time is it", self.name, request.audio.duration_seconds)

    async def aclose(self) -> None:
        return None


class FixedAgent:
    name = "fixed"

    async def reply(self, session: AgentSession, turn: AgentTurn) -> AsyncIterator[str]:
        await asyncio.sleep(AGENT_FIRST_TOKEN)
        words = ANSWER.split(" ")
        for index, word in enumerate(words):
            if index:
                await asyncio.sleep(TOKEN_GAP)
            yield word if index == 0 else f" {word}"

    async def aclose(self) -> None:
        return None


class FixedTts:
    name = "fixed"

    async def synthesize(self, request: SpeechRequest) -> AsyncIterator[PcmAudio]:
        await asyncio.sleep(TTS_FIRST_BYTE)
        for _ in range(10):
            yield CHUNK

    async def aclose(self) -> None:
        return None


class FirstAudio:
    """An AudioOut that notes when the first chunk of a reply is consumed."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def say(self, chunks: AsyncIterable[PcmAudio]) -> object:
        async def play() -> None:
            async for _ in chunks:
                if self.first is None:
                    self.first = time.monotonic()

        task = asyncio.create_task(play())
        self.tasks.append(task)
        return task


def runner() -> TurnRunner:
    policy = RetryPolicy(attempt_timeout=5, overall_timeout=10)
    return TurnRunner(
        stt=FallbackChain(Stage.STT, [FixedStt()], policy),
        agent=FallbackChain(Stage.AGENT, [FixedAgent()], policy),
        tts=FixedTts(),
    )


async def whole_reply_first_audio(turns: TurnRunner, out: FirstAudio) -> None:
    """The baseline: wait for the agent's whole answer, then speak it."""
    session = AgentSession("bench")
    text = "".join(
        [d async for d in turns.agent.providers[0].reply(session, AgentTurn("q", 1, "u"))]
    )
    out.say(turns.speech(text))


async def one_session(turns: TurnRunner, count: int, *, streaming: bool) -> list[float]:
    session = AgentSession("bench")
    e2e: list[float] = []
    for _ in range(count):
        out = FirstAudio()
        ended = time.monotonic()
        utterance = Utterance(1, PcmAudio(bytes(32_000), 16_000), ended - 1.0, ended)
        if streaming:
            outcome: TurnOutcome = await turns.run(
                TurnRequest(0, 1, "user", utterance), session, out
            )
            assert outcome.status == "completed", outcome
        else:
            await asyncio.sleep(STT_SECONDS)  # the same transcription, then the whole reply
            await whole_reply_first_audio(turns, out)
        await asyncio.gather(*out.tasks)
        assert out.first is not None
        e2e.append(out.first - ended)
    return e2e


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def main(turn_count: int, sizes: list[int]) -> None:
    turns = runner()
    floor_ms = PROVIDER_FLOOR * 1000
    print(f"provider floor (STT, agent to first sentence, TTS first byte): {floor_ms:.0f} ms")
    print("| sessions | turns | e2e p50 | e2e p95 | overhead p50 | overhead p95 |")
    print("|---|---|---|---|---|---|")
    for size in sizes:
        results = await asyncio.gather(
            *(one_session(turns, turn_count, streaming=True) for _ in range(size))
        )
        e2e = [value for session in results for value in session]
        overhead = [value - PROVIDER_FLOOR for value in e2e]
        print(
            f"| {size} | {len(e2e)} | {percentile(e2e, 0.5) * 1000:.0f} ms "
            f"| {percentile(e2e, 0.95) * 1000:.0f} ms | {percentile(overhead, 0.5) * 1000:.1f} ms "
            f"| {percentile(overhead, 0.95) * 1000:.1f} ms |"
        )
    streamed = await one_session(turns, turn_count, streaming=True)
    whole = await one_session(turns, turn_count, streaming=False)
    print(
        f"time to first audio, one session: sentence streaming "
        f"{statistics.median(streamed) * 1000:.0f} ms vs whole reply "
        f"{statistics.median(whole) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--sessions", default="1,10,50,100")
    parser.add_argument("--log-level", default="warning")
    arguments = parser.parse_args()
    configure_logging(
        level=arguments.log_level,
        service="bench",
        environment="production",
        redactor=Redactor(),
        stream=io.StringIO(),  # written and formatted as in production, then discarded
    )
    asyncio.run(main(arguments.turns, [int(size) for size in arguments.sessions.split(",")]))
