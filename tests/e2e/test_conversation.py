"""A user talks to the bot in a (fake) Discord voice channel and hears the answer.

Everything is real except Discord itself: the discord.py client with DAVE, our receive
layer, audio path and pipeline, and the embedded offline providers (Whisper tiny.en,
the local agent, the packaged neural voice). The bot's reply is captured by the fake,
decoded, and transcribed back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import discord
import numpy as np
import pytest
import soxr

from openclaw_voice.app import Application
from openclaw_voice.audio.pcm import STT_SAMPLE_RATE, PcmAudio
from openclaw_voice.discord.client import VoiceBot
from openclaw_voice.pipeline.manager import VoicePipeline
from openclaw_voice.pipeline.turn import INTERRUPTED_MARK
from openclaw_voice.store.state import GuildSettings
from openclaw_voice.stt.base import TranscriptionRequest
from openclaw_voice.stt.local import LocalSpeechToText
from tests.e2e.support import (
    bot_running,
    join_with,
    synthesize_48k_stereo,
    wait_until_quiet,
    watch_outcomes,
)
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.fixtures import ClientRunner
from tests.fakes.openai_chat import FakeOpenAIChat
from tests.speech import word_error_rate

QUESTION = "Repeat after me: the kitchen lights are on."
ANSWER = "The kitchen lights are on."
# Nothing listens on the discard port of the loopback address: connections are refused.
URL = "http://127.0.0.1:9/v1"


async def test_a_spoken_question_gets_a_spoken_answer(
    fake_discord: FakeDiscord, running_bot: tuple[VoiceBot, Application]
) -> None:
    bot, app = running_bot
    question = await synthesize_48k_stereo(QUESTION)  # before the bot listens: loads a model
    transcripts = fake_discord.text_channel()
    assert app.store is not None
    await app.store.save_guild_settings(
        GuildSettings(fake_discord.guild.id, transcript_channel_id=transcripts.id)
    )
    channel = fake_discord.voice_channel()
    alice = await fake_discord.add_simulated_user("alice", channel=channel)
    voice_channel = bot.get_channel(channel.id)
    assert isinstance(voice_channel, discord.VoiceChannel)
    assert bot.sessions is not None
    await bot.sessions.start(voice_channel, started_by=alice.user.id, text_channel_id=None)
    call = fake_discord.voice.calls[channel.id]
    await call.wait_for_group({fake_discord.world.bot.id, alice.user.id})
    await fake_discord.recorder.wait_for(
        "dave_transition_executed", lambda e: e.data["channel_id"] == channel.id
    )
    connection = await fake_discord.voice.wait_for_connection(fake_discord.guild.id)

    await alice.speak(question, realtime=True)
    # The answer is about 2 s of speech: wait for 1.5 s of it, then for the rest.
    try:
        await connection.capture.wait_for_frames(75, within=30)
    except TimeoutError:
        receiver = bot.sessions.sessions[fake_discord.guild.id].voice.receiver
        raise AssertionError(f"no answer; receive stats {receiver.stats.snapshot()}") from None
    pipeline = bot.sessions.observer
    assert isinstance(pipeline, VoicePipeline)
    guild = pipeline.guilds[fake_discord.guild.id]
    async with asyncio.timeout(30):
        while guild.last_outcome is None:
            await connection.capture.wait_for_frames(len(connection.capture.frames) + 1)
    outcome = guild.last_outcome
    assert outcome.status == "completed", outcome
    assert word_error_rate(QUESTION, outcome.transcript or "") <= 0.25
    assert outcome.reply.strip().lower() == ANSWER.lower()
    assert outcome.timings["e2e"] > 0
    posted = await fake_discord.recorder.wait_for(
        "channel_message", lambda e: e.data.get("channel_id") == transcripts.id
    )
    content = str(posted.data["body"]["content"])
    assert content.startswith("**Alice**: ")
    assert content.lower().endswith(f"**openclaw**: {ANSWER.lower()}")

    source = guild.speaker._source  # type: ignore[attr-defined]
    if source is not None:
        await asyncio.wait_for(source.wait_closed(), 30)
    heard = connection.capture.mono()
    audio = (soxr.resample(heard, 48_000, STT_SAMPLE_RATE) * 32767).astype(np.int16)
    stt = LocalSpeechToText()
    try:
        transcript = await stt.transcribe(
            TranscriptionRequest(PcmAudio(audio.tobytes(), STT_SAMPLE_RATE))
        )
    finally:
        await stt.aclose()
    assert word_error_rate(ANSWER, transcript.text) <= 0.25, transcript.text


async def test_with_two_people_only_the_one_who_says_the_wake_name_is_answered(
    fake_discord: FakeDiscord, running_bot: tuple[VoiceBot, Application]
) -> None:
    bot, _ = running_bot
    addressed = await synthesize_48k_stereo("OpenClaw, repeat after me: the door is open.")
    chatter = await synthesize_48k_stereo("Repeat after me: the window is closed.")
    (alice, bob), connection, guild = await join_with(fake_discord, bot, ["alice", "bob"])

    await asyncio.gather(alice.speak(addressed), bob.speak(chatter))
    async with asyncio.timeout(60):
        while len(guild.outcomes) < 2:
            await connection.capture.wait_for_frames(len(connection.capture.frames) + 1)
    by_user = {request.user_id: outcome for request, outcome in guild.outcomes}
    assert by_user[bob.user.id].status == "ignored"  # two humans, no wake name
    answered = by_user[alice.user.id]
    assert answered.status == "completed"
    assert answered.reply.strip().lower() == "the door is open."
    remembered = [m for m in guild.agent_session.history if m.role == "user"]
    assert [(m.name or "").lower() for m in remembered] == ["alice"]  # its speaker


LONG_ANSWER = (
    "One, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve, thirteen, "
    "fourteen, fifteen, sixteen, seventeen, eighteen, nineteen, twenty."
)


async def test_speaking_over_the_bot_interrupts_it(
    fake_discord: FakeDiscord, discord_clients: ClientRunner, tmp_path: Path
) -> None:
    """Alice speaks over a long answer and it stops. The agent is a local fake of the
    OpenAI chat API that always answers at length: how long the answer is must not hang on
    what the recogniser made of the question on a loaded machine (a CI run once heard a
    short answer end before the interruption)."""
    question = await synthesize_48k_stereo(QUESTION)
    interruption = await synthesize_48k_stereo("Stop, stop.")
    async with FakeOpenAIChat(reply=LONG_ANSWER) as agent:
        settings = {
            "AGENT_PROVIDER": "openai",
            "OPENAI_API_KEY": agent.api_key,
            "OPENAI_BASE_URL": f"{agent.base_url}/v1",
        }
        async with bot_running(fake_discord, discord_clients, tmp_path, settings) as (bot, _):
            (alice,), connection, guild = await join_with(fake_discord, bot, ["alice"])
            await alice.speak(question)
            await connection.capture.wait_for_frames(25, within=60)  # the answer has started
            heard_before = len(connection.capture.frames)
            await alice.speak(interruption)
            async with asyncio.timeout(30):
                while not any(outcome.status == "interrupted" for _, outcome in guild.outcomes):
                    await connection.capture.wait_for_frames(len(connection.capture.frames) + 1)
            # The long answer (about 8 s) was cut: far fewer frames than it would have taken.
            assert len(connection.capture.frames) - heard_before < 300
            # The agent will see the reply as cut short, not as if it had been heard whole.
            replies = [m.content for m in guild.agent_session.history if m.role == "assistant"]
            assert replies
            assert replies[0].endswith(INTERRUPTED_MARK)


async def test_opted_out_speech_is_never_transcribed(
    fake_discord: FakeDiscord, running_bot: tuple[VoiceBot, Application]
) -> None:
    bot, app = running_bot
    question = await synthesize_48k_stereo(QUESTION)
    (alice,), _, guild = await join_with(fake_discord, bot, ["alice"])
    assert app.pipeline is not None
    app.pipeline.set_opted_out(fake_discord.guild.id, alice.user.id, True)
    await alice.speak(question)
    receiver = bot.sessions.sessions[fake_discord.guild.id].voice.receiver  # type: ignore[union-attr]
    assert receiver.stats.snapshot()["delivered"] >= 100
    assert app.metrics is not None
    dropped = app.metrics.registry.get_sample_value(
        "audio_frames_dropped_total", {"reason": "opted_out"}
    )
    assert dropped is not None
    assert dropped >= 100
    assert guild.streams == {}  # nothing of theirs was even decoded
    assert list(guild.outcomes) == []


@pytest.mark.parametrize(
    "running_bot",
    [{"STT_PROVIDER": "openai", "STT_API_KEY": "sk-test-0123456789", "OPENAI_BASE_URL": URL}],
    indirect=True,
)
async def test_a_failing_recogniser_is_apologised_for_out_loud(
    fake_discord: FakeDiscord, running_bot: tuple[VoiceBot, Application]
) -> None:
    """The settings point OpenAI at nothing; the turn fails and the bot says so."""
    bot, app = running_bot
    question = await synthesize_48k_stereo(QUESTION)
    (alice,), connection, guild = await join_with(fake_discord, bot, ["alice"])
    await alice.speak(question)
    await connection.capture.wait_for_frames(50, within=60)  # the apology is being heard
    async with asyncio.timeout(30):
        while not guild.outcomes:
            await connection.capture.wait_for_frames(len(connection.capture.frames) + 1)
    (_, outcome), *_ = guild.outcomes
    assert outcome.status == "error"
    assert outcome.error is not None
    assert outcome.error.code // 1000 == 4  # a speech-to-text error
    assert app.metrics is not None
    assert app.metrics.registry.get_sample_value("pipeline_recovery_success_total") == 1


async def test_speech_is_understood_through_loss_reordering_and_jitter(
    fake_discord: FakeDiscord, running_bot: tuple[VoiceBot, Application]
) -> None:
    bot, _ = running_bot
    question = await synthesize_48k_stereo(QUESTION)
    (alice,), connection, guild = await join_with(fake_discord, bot, ["alice"])
    faults = fake_discord.controls.packets
    faults.loss, faults.reorder, faults.jitter = 10, 10, 0.03
    sent = await alice.speak(question)
    assert sent.lost > 0
    assert sent.reordered > 0
    assert sent.jittered > 0
    async with asyncio.timeout(60):
        while not guild.outcomes:
            await connection.capture.wait_for_frames(len(connection.capture.frames) + 1)
    (_, outcome), *_ = guild.outcomes
    assert outcome.transcript is not None
    assert word_error_rate(QUESTION, outcome.transcript) <= 0.25, outcome.transcript


@pytest.mark.parametrize("running_bot", [{"BUDGET_LLM_TOKENS_PER_DAY": "5"}], indirect=True)
async def test_when_the_budget_is_spent_answers_come_in_text(
    fake_discord: FakeDiscord, running_bot: tuple[VoiceBot, Application]
) -> None:
    bot, _ = running_bot
    question = await synthesize_48k_stereo(QUESTION)
    text_channel = fake_discord.text_channel()
    channel = fake_discord.voice_channel()
    alice = await fake_discord.add_simulated_user("alice", channel=channel)
    voice_channel = bot.get_channel(channel.id)
    assert isinstance(voice_channel, discord.VoiceChannel)
    assert bot.sessions is not None
    await bot.sessions.start(
        voice_channel, started_by=alice.user.id, text_channel_id=text_channel.id
    )
    await fake_discord.voice.calls[channel.id].wait_for_group(
        {fake_discord.world.bot.id, alice.user.id}
    )
    await fake_discord.recorder.wait_for(
        "dave_transition_executed", lambda e: e.data["channel_id"] == channel.id
    )
    connection = await fake_discord.voice.wait_for_connection(fake_discord.guild.id)
    pipeline = bot.sessions.observer
    assert isinstance(pipeline, VoicePipeline)
    guild = pipeline.guilds[fake_discord.guild.id]

    for turns in (1, 2):  # the first turn spends the day's 5 tokens, the second is over
        await wait_until_quiet(fake_discord)  # not over the first answer: that interrupts it
        await alice.speak(question)
        async with asyncio.timeout(60):
            while len(guild.outcomes) < turns:
                await connection.capture.wait_for_frames(len(connection.capture.frames) + 1)
    posted = await fake_discord.recorder.wait_for(
        "channel_message", lambda e: e.data.get("channel_id") == text_channel.id
    )
    assert str(posted.data["body"]["content"]).lower().endswith(ANSWER.lower())
    assert all(outcome.status == "completed" for _, outcome in guild.outcomes)


async def test_only_speakers_the_role_allowlist_admits_are_answered(
    fake_discord: FakeDiscord, running_bot: tuple[VoiceBot, Application]
) -> None:
    bot, app = running_bot
    question = await synthesize_48k_stereo(QUESTION)
    guild_fake = fake_discord.guild
    voice_role = await fake_discord.create_role("voice")
    assert app.store is not None
    await app.store.save_guild_settings(
        GuildSettings(guild_fake.id, addressing_mode="open", allowed_role_ids=(voice_role.id,))
    )
    (alice, bob), _, guild = await join_with(fake_discord, bot, ["alice", "bob"])
    await fake_discord.grant_role(bob.user, voice_role)
    outcomes = watch_outcomes(guild)

    await alice.speak(question)  # no role: not answered
    await bob.speak(question)
    answered = await outcomes.wait_for_total(1)
    assert answered.status == "completed"
    ((request, _),) = list(outcomes)
    assert request.user_id == bob.user.id  # alice's utterance (finished first) made no turn
