"""What the end-to-end tests share: the user's voice, a running bot, joining, listening."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import discord
import numpy as np
import soxr

from openclaw_voice.app import Application
from openclaw_voice.audio.pcm import STT_SAMPLE_RATE, PcmAudio
from openclaw_voice.config import load_settings
from openclaw_voice.discord.client import VoiceBot
from openclaw_voice.pipeline.guild import RECENT_TURNS, GuildPipeline
from openclaw_voice.pipeline.manager import VoicePipeline
from openclaw_voice.pipeline.turn import TurnOutcome, TurnRequest
from openclaw_voice.store.state import StateStore
from openclaw_voice.stt.base import TranscriptionRequest
from openclaw_voice.stt.local import LocalSpeechToText
from openclaw_voice.tts.base import SpeechRequest
from openclaw_voice.tts.local import LocalTextToSpeech
from tests.fakes.discord import FakeDiscord, SimulatedUser, VoiceConnection
from tests.fakes.discord.fixtures import ClientRunner
from tests.fakes.http import RecordedRequest
from tests.fakes.speech_upload import parse_multipart, read_wav


async def synthesize_48k_stereo(text: str, *, trailing_silence: float = 1.0) -> bytes:
    """The user's voice: the local neural TTS, resampled to Discord's format.

    The trailing silence (a second by default) is sent too, so the utterance has ended
    by the time the speaking is done.
    """
    voice = LocalTextToSpeech()
    try:
        chunks = [chunk async for chunk in voice.synthesize(SpeechRequest(text))]
    finally:
        await voice.aclose()
    rate = chunks[0].sample_rate
    mono = np.frombuffer(b"".join(c.data for c in chunks), dtype=np.int16).astype(np.float32)
    resampled = soxr.resample(mono / 32768, rate, 48_000)
    pcm = (np.clip(resampled, -1, 1) * 32767).astype(np.int16)
    silence = np.zeros(int(48_000 * trailing_silence), dtype=np.int16)
    return np.repeat(np.concatenate([pcm, silence]), 2).tobytes()


@asynccontextmanager
async def bot_running(
    fake_discord: FakeDiscord,
    discord_clients: ClientRunner,
    state_dir: Path,
    extra: Mapping[str, str] | None = None,
) -> AsyncIterator[tuple[VoiceBot, Application]]:
    """The bot on the offline providers (``extra`` adds settings), acting as the active slot."""
    endpoints = fake_discord.endpoints
    settings = load_settings(
        {
            "DISCORD_TOKEN": fake_discord.token,
            "DISCORD_API_BASE": endpoints.api_base,
            "DISCORD_GATEWAY_URL": endpoints.gateway_url,
            "DISCORD_CA_BUNDLE": str(endpoints.ca_bundle),
            "STATE_DIR": str(state_dir),
            **(extra or {}),
        }
    )
    app = Application(settings)
    store = await StateStore.open(state_dir)
    bot = app.build_bot(store)
    try:
        await discord_clients.start(bot)
        await app.slot.set_role("active")
        yield bot, app
    finally:
        await app.slot.set_role("standby")
        await discord_clients.close()
        await store.close()


async def join_with(
    fake: FakeDiscord, bot: VoiceBot, names: list[str]
) -> tuple[list[SimulatedUser], VoiceConnection, GuildPipeline]:
    """Simulated users in a voice channel the bot joins; returns once DAVE is set up."""
    channel = fake.voice_channel()
    sims = [await fake.add_simulated_user(name, channel=channel) for name in names]
    voice_channel = bot.get_channel(channel.id)
    assert isinstance(voice_channel, discord.VoiceChannel)
    assert bot.sessions is not None
    await bot.sessions.start(voice_channel, started_by=sims[0].user.id, text_channel_id=None)
    await fake.voice.calls[channel.id].wait_for_group(
        {fake.world.bot.id, *(sim.user.id for sim in sims)}
    )
    await fake.recorder.wait_for(
        "dave_transition_executed", lambda e: e.data["channel_id"] == channel.id
    )
    connection = await fake.voice.wait_for_connection(fake.guild.id)
    pipeline = bot.sessions.observer
    assert isinstance(pipeline, VoicePipeline)
    return sims, connection, pipeline.guilds[fake.guild.id]


class WatchedOutcomes(deque[tuple[TurnRequest, TurnOutcome]]):
    """A guild pipeline's record of recent turns that a test can wait on.

    Installed as ``guild.outcomes``; it keeps the pipeline's bound and counts every turn
    ever recorded, so a test can wait for the n-th turn of a long conversation.
    """

    def __init__(self, maxlen: int = RECENT_TURNS) -> None:
        super().__init__(maxlen=maxlen)
        self.total = 0
        self._changed = asyncio.Event()

    def append(self, item: tuple[TurnRequest, TurnOutcome]) -> None:
        super().append(item)
        self.total += 1
        self._changed.set()

    async def wait_for_total(self, count: int, within: float = 60.0) -> TurnOutcome:
        """The ``count``-th turn's outcome, once it has been recorded."""
        async with asyncio.timeout(within):
            while self.total < count:
                self._changed.clear()
                await self._changed.wait()
        return self[count - self.total - 1][1]


def watch_outcomes(guild: GuildPipeline) -> WatchedOutcomes:
    watched = WatchedOutcomes()
    watched.extend(guild.outcomes)
    guild.outcomes = watched
    return watched


async def transcribe_heard(connection: VoiceConnection, *, since: float = 0.0) -> str:
    """What the bot said (captured frames arriving after ``since``), transcribed locally."""
    frames = [frame for frame in connection.capture.frames if frame.arrival >= since]
    stereo = np.frombuffer(b"".join(frame.pcm for frame in frames), dtype=np.int16)
    mono = stereo.reshape(-1, 2).astype(np.float64).mean(axis=1) / 32768
    audio = (soxr.resample(mono, 48_000, STT_SAMPLE_RATE) * 32767).astype(np.int16)
    stt = LocalSpeechToText()
    try:
        transcript = await stt.transcribe(
            TranscriptionRequest(PcmAudio(audio.tobytes(), STT_SAMPLE_RATE))
        )
    finally:
        await stt.aclose()
    return transcript.text


def uploaded_seconds(recorded: RecordedRequest) -> float:
    """The length of the audio in a multipart transcription request."""
    form = parse_multipart(recorded.headers.get("Content-Type", ""), recorded.body)
    return read_wav(form["file"][0].data).duration_seconds


async def wait_until_quiet(fake: FakeDiscord, within: float = 30.0) -> None:
    """Until the bot has told Discord it stopped speaking (op 5 with no speaking flags).

    A test that asks its next question only then does not talk over the bot (which
    would interrupt it).
    """
    said = fake.recorder.of_kind("voice_speaking")
    if not said or not said[-1].data["data"].get("speaking"):
        return
    known = {id(event) for event in said}
    await fake.recorder.wait_for(
        "voice_speaking",
        lambda event: id(event) not in known and not event.data["data"].get("speaking"),
        within=within,
    )
