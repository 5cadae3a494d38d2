"""Pre-release check against real Discord: a second bot speaks, ours must hear it.

Run by operators before a release (never in CI, which has no network):

    OPENCLAW_LIVE_BOT_TOKEN=...      # the bot under test
    OPENCLAW_LIVE_SPEAKER_TOKEN=...  # a second bot in the same guild that speaks
    OPENCLAW_LIVE_CHANNEL_ID=...     # a voice channel both bots may join
    .venv/bin/pytest tests/live -s

Both bots join the channel (DAVE is mandatory there), the speaker plays a sentence from
the local voice, and our receive path must deliver it as an utterance that the offline
recogniser transcribes with a word error rate of at most 0.25.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os

import discord
import numpy as np
import pytest
import soxr

from openclaw_voice.audio.clock import FrameClock
from openclaw_voice.audio.packets import OpusPacket, Utterance
from openclaw_voice.audio.user_stream import UserAudioStream
from openclaw_voice.audio.vad import VadPool
from openclaw_voice.discord.client import bot_intents
from openclaw_voice.discord.voice_client import ListeningVoiceClient
from openclaw_voice.stt.base import TranscriptionRequest
from openclaw_voice.stt.local import LocalSpeechToText
from openclaw_voice.tts.base import SpeechRequest
from openclaw_voice.tts.local import LocalTextToSpeech
from tests.speech import word_error_rate

SENTENCE = "The quick brown fox jumps over the lazy dog."
VARIABLES = ("OPENCLAW_LIVE_BOT_TOKEN", "OPENCLAW_LIVE_SPEAKER_TOKEN", "OPENCLAW_LIVE_CHANNEL_ID")
MISSING = [name for name in VARIABLES if not os.environ.get(name)]

pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"live Discord check: set {', '.join(MISSING)} to run it"
)


class Collector:
    """A PacketSink that turns one user's packets into utterances."""

    def __init__(self, clock: FrameClock) -> None:
        self.utterances: asyncio.Queue[Utterance] = asyncio.Queue()
        self.clock = clock
        self.streams: dict[int, UserAudioStream] = {}
        self.pool = VadPool()

    def on_packet(self, user_id: int, packet: OpusPacket) -> None:
        stream = self.streams.get(user_id)
        if stream is None:
            stream = UserAudioStream(user_id, on_utterance=self.utterances, vad_pool=self.pool)
            self.streams[user_id] = stream
            self.clock.add(stream)
        stream.push(packet)

    def on_user_left(self, user_id: int) -> None:
        stream = self.streams.pop(user_id, None)
        if stream is not None:
            self.clock.remove(stream)
            stream.close()


async def sentence_48k_stereo() -> bytes:
    voice = LocalTextToSpeech()
    try:
        chunks = [chunk async for chunk in voice.synthesize(SpeechRequest(SENTENCE))]
    finally:
        await voice.aclose()
    mono = np.frombuffer(b"".join(c.data for c in chunks), dtype=np.int16) / 32768
    resampled = soxr.resample(mono, chunks[0].sample_rate, 48_000)
    return np.repeat((resampled * 32767).astype(np.int16), 2).tobytes()


class LiveBot(discord.Client):
    def __init__(self) -> None:
        super().__init__(intents=bot_intents())
        self.ready = asyncio.Event()

    async def on_ready(self) -> None:
        self.ready.set()


async def joined(
    token: str, channel_id: int, cls: type[discord.VoiceProtocol], tasks: set[asyncio.Task[None]]
) -> tuple[discord.Client, discord.VoiceProtocol]:
    client = LiveBot()
    tasks.add(asyncio.create_task(client.start(token)))
    await asyncio.wait_for(client.ready.wait(), 30)
    channel = await client.fetch_channel(channel_id)
    assert isinstance(channel, discord.VoiceChannel)
    return client, await channel.connect(cls=cls, timeout=30)


async def test_our_bot_hears_a_second_bot_in_a_real_voice_channel() -> None:
    channel_id = int(os.environ["OPENCLAW_LIVE_CHANNEL_ID"])
    clock = FrameClock()
    collector = Collector(clock)
    pcm = await sentence_48k_stereo()
    tasks: set[asyncio.Task[None]] = set()
    listener, listening = await joined(
        os.environ["OPENCLAW_LIVE_BOT_TOKEN"], channel_id, ListeningVoiceClient, tasks
    )
    speaker, speaking = await joined(
        os.environ["OPENCLAW_LIVE_SPEAKER_TOKEN"], channel_id, discord.VoiceClient, tasks
    )
    try:
        assert isinstance(listening, ListeningVoiceClient)
        assert isinstance(speaking, discord.VoiceClient)
        clock.start()
        listening.listen(collector)
        speaking.play(discord.PCMAudio(io.BytesIO(pcm)))
        utterance = await asyncio.wait_for(collector.utterances.get(), 60)
        stt = LocalSpeechToText()
        try:
            heard = await stt.transcribe(TranscriptionRequest(utterance.audio))
        finally:
            await stt.aclose()
        assert word_error_rate(SENTENCE, heard.text) <= 0.25, heard.text
    finally:
        await clock.stop()
        for client in (speaker, listener):
            with contextlib.suppress(Exception):
                await client.close()
