"""What our code adds to each provider call, over the provider's own latency.

Every cloud provider runs through its real SDK or REST client and our fallback chain
against its local fake, which waits a fixed ``--latency`` before answering. Overhead =
measured time minus that latency: the SDK, HTTP on localhost, request building, response
parsing, re-chunking and the chain. STT is measured to the transcript, TTS to the first
audio chunk, agents to the first text delta.

    .venv/bin/python -m bench.bench_provider_overhead [--calls 30] [--latency 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
from tests.fakes.openai_chat import FakeOpenAIChat
from tests.fakes.openclaw_gateway import TOKEN, FakeOpenClawGateway
from tests.integration.stt.conftest import environment, make_fake
from tests.integration.tts.conftest import rig

from openclaw_voice.agent.base import AgentSession, AgentTurn
from openclaw_voice.agent.openai import OpenAIAgent
from openclaw_voice.agent.openclaw import OpenClawAgent
from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.config import load_settings
from openclaw_voice.errors import Stage
from openclaw_voice.resilience import FallbackChain, RetryPolicy
from openclaw_voice.secret import Secret
from openclaw_voice.stt.base import TranscriptionRequest
from openclaw_voice.stt.registry import build_stt_chain, transcribe
from openclaw_voice.tts.base import SpeechRequest, TextToSpeech

POLICY = RetryPolicy(attempt_timeout=10, overall_timeout=20, attempts_per_provider=1)
TURN = AgentTurn(text="What's the weather like?", user_id=1, display_name="Alice")


def utterance() -> PcmAudio:
    """One second of a voiced-like tone at 16 kHz (silence would never be sent)."""
    t = np.arange(16_000) / 16_000
    wave = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)
    return PcmAudio(wave.tobytes(), 16_000)


async def timed(call: Callable[[], Awaitable[object]], calls: int) -> list[float]:
    await call()  # warm up connections and SDK clients
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        seconds.append(time.perf_counter() - started)
    return seconds


async def first_item(stream: AsyncIterator[object]) -> None:
    try:
        await anext(stream)
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


def report(name: str, seconds: list[float], latency: float) -> None:
    overhead = sorted((value - latency) * 1000 for value in seconds)
    p50 = overhead[len(overhead) // 2]
    p95 = overhead[min(len(overhead) - 1, round(0.95 * (len(overhead) - 1)))]
    print(f"| {name} | {len(seconds)} | {p50:.1f} ms | {p95:.1f} ms |")


async def stt(name: str, calls: int, latency: float) -> None:
    fake = make_fake(name)
    await fake.start()
    try:
        fake.controls.latency = latency
        chain = build_stt_chain(load_settings(environment({name: fake})))
        request = TranscriptionRequest(utterance(), language="en")
        report(f"stt {name}", await timed(lambda: transcribe(chain, request), calls), latency)
        for provider in chain.providers:
            await provider.aclose()
    finally:
        await fake.stop()


async def tts(name: str, calls: int, latency: float) -> None:
    async with rig(name) as started:
        started.fake.controls.latency = latency
        chain: FallbackChain[TextToSpeech] = FallbackChain(Stage.TTS, [started.provider], POLICY)
        request = SpeechRequest("Hello there, how can I help?")

        async def call() -> None:
            await first_item(chain.stream(lambda provider: provider.synthesize(request)))

        report(f"tts {name} (first chunk)", await timed(call, calls), latency)


async def agents(calls: int, latency: float) -> None:
    async with FakeOpenClawGateway(token=TOKEN) as gateway, FakeOpenAIChat() as openai_api:
        gateway.controls.latency = latency
        openai_api.controls.latency = latency
        built: dict[str, OpenClawAgent | OpenAIAgent] = {
            "openclaw": OpenClawAgent(
                gateway_url=gateway.base_url, token=Secret(TOKEN), agent_id="main", wake_name="x"
            ),
            "openai": OpenAIAgent(
                base_url=openai_api.api_base,
                api_key=Secret(openai_api.api_key),
                model="gpt-4o-mini",
                wake_name="x",
            ),
        }
        for name, agent in built.items():
            report(f"agent {name} (first token)", await timed(first_token(agent), calls), latency)
            await agent.aclose()


def first_token(agent: OpenClawAgent | OpenAIAgent) -> Callable[[], Awaitable[None]]:
    chain = FallbackChain(Stage.AGENT, [agent], POLICY)
    session = AgentSession("bench")

    async def call() -> None:
        await first_item(chain.stream(lambda provider: provider.reply(session, TURN)))

    return call


async def main(calls: int, latency: float) -> None:
    print(f"fake latency {latency * 1000:.0f} ms, {calls} calls each after one warm-up")
    print("| provider | calls | overhead p50 | overhead p95 |")
    print("|---|---|---|---|")
    for name in ("openai", "elevenlabs", "google", "azure"):
        await stt(name, calls, latency)
    for name in ("elevenlabs", "openai", "google", "azure"):
        await tts(name, calls, latency)
    await agents(calls, latency)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--latency", type=float, default=0.1)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.calls, arguments.latency))
