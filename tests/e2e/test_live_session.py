"""A live voice session over time: pauses, a provider going down, silence, a long talk.

The real discord.py client against the fake Discord, with the real provider clients
against the local HTTP fakes of OpenAI's transcription API and the OpenClaw gateway
(or the embedded offline providers), the whole pipeline in between.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import discord
import pytest
import structlog
from structlog.testing import capture_logs

from openclaw_voice.app import Application
from openclaw_voice.discord.client import VoiceBot
from openclaw_voice.pipeline.manager import GOODBYES, VoicePipeline
from tests.e2e.support import (
    bot_running,
    join_with,
    synthesize_48k_stereo,
    transcribe_heard,
    uploaded_seconds,
    wait_until_quiet,
    watch_outcomes,
)
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.fixtures import ClientRunner
from tests.fakes.openai_transcriptions import FakeOpenAITranscriptions
from tests.fakes.openclaw_gateway import TOKEN, FakeOpenClawGateway
from tests.speech import word_error_rate

QUESTION = "Repeat after me: the kitchen lights are on."
ANSWER = "The kitchen lights are on."


def openai_stt(api: FakeOpenAITranscriptions, chain: str = "openai") -> dict[str, str]:
    return {
        "STT_PROVIDER": chain,
        "STT_API_KEY": api.api_key,
        "OPENAI_BASE_URL": f"{api.base_url}/v1",
    }


@contextmanager
def captured_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    previous = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as entries:
            yield entries
    finally:
        structlog.configure(wrapper_class=previous)


async def test_a_pause_within_the_grace_is_answered_as_one_turn(
    fake_discord: FakeDiscord, discord_clients: ClientRunner, tmp_path: Path
) -> None:
    """She pauses (long enough to end an utterance) and goes on while it is transcribed."""
    first = await synthesize_48k_stereo("Repeat after me:", trailing_silence=0.0)
    rest = await synthesize_48k_stereo("the kitchen lights are on.")
    async with (
        FakeOpenAITranscriptions() as stt,
        bot_running(fake_discord, discord_clients, tmp_path, openai_stt(stt)) as (bot, app),
    ):
        stt.transcript = QUESTION  # what the recogniser makes of the whole
        stt.controls.hold = asyncio.Event()
        (alice,), connection, guild = await join_with(fake_discord, bot, ["alice"])
        # How long the pause turns out depends on scheduling on a busy machine; the grace
        # boundary itself is pinned down by the unit tests.
        guild.continuation_grace = 10.0
        outcomes = watch_outcomes(guild)

        await alice.speak(first)
        await stt.wait_for_requests(1)  # the first part ended and is being transcribed...
        await alice.speak(rest)  # ...when she goes on
        await stt.wait_for_requests(2)
        stt.controls.hold.set()
        outcome = await outcomes.wait_for_total(1)
        await connection.capture.wait_for_frames(50, within=30)  # the answer is heard

        assert outcome.status == "completed", outcome
        assert outcome.reply.strip().lower() == ANSWER.lower()
        first_upload, merged_upload = (uploaded_seconds(r) for r in stt.requests)
        assert merged_upload > first_upload + 1.0  # both parts, in one request
        assert guild.continued == 1
        asked = [m.content for m in guild.agent_session.history if m.role == "user"]
        assert asked == [QUESTION]  # one turn for the agent
        assert app.metrics is not None
        turns = app.metrics.registry.get_sample_value
        assert turns("pipeline_turns_total", {"status": "completed"}) == 1
        assert turns("pipeline_turns_total", {"status": "interrupted"}) == 0
        assert outcomes.total == 1


async def test_when_the_recogniser_goes_down_mid_conversation_the_next_one_answers(
    fake_discord: FakeDiscord, discord_clients: ClientRunner, tmp_path: Path
) -> None:
    """STT_PROVIDER=openai,local: OpenAI answers the first turn, fails on the second."""
    question = await synthesize_48k_stereo(QUESTION)
    settings = {"PROVIDER_ATTEMPTS": "1"}
    async with FakeOpenAITranscriptions() as stt:
        settings |= openai_stt(stt, "openai,local")
        async with bot_running(fake_discord, discord_clients, tmp_path, settings) as (bot, app):
            # The fake hears something else, so whose transcript was used is plain.
            stt.transcript = "Repeat after me: the garage door is shut."
            (alice,), connection, guild = await join_with(fake_discord, bot, ["alice"])
            outcomes = watch_outcomes(guild)

            await alice.speak(question)
            first = await outcomes.wait_for_total(1)
            assert first.status == "completed", first
            assert first.reply.strip().lower() == "the garage door is shut."

            stt.controls.fail(503, times=100)  # OpenAI is down from now on
            await wait_until_quiet(fake_discord)
            await alice.speak(question)
            asked_at = time.monotonic()
            second = await outcomes.wait_for_total(2)
            source = guild.speaker._source  # type: ignore[attr-defined]
            if source is not None:
                await asyncio.wait_for(source.wait_closed(), 30)

            assert second.status == "completed", second
            assert word_error_rate(QUESTION, second.transcript or "") <= 0.25
            assert second.reply.strip().lower() == ANSWER.lower()
            assert len(stt.requests) == 2  # the second one failed (503)...
            assert app.metrics is not None
            local = app.metrics.registry.get_sample_value(
                "stt_audio_seconds_total", {"provider": "local"}
            )
            assert local is not None
            assert local > 1.0  # ...and the local recogniser took over
            heard = await transcribe_heard(connection, since=asked_at)
            assert word_error_rate(ANSWER, heard) <= 0.25, heard


@pytest.mark.parametrize("running_bot", [{"IDLE_TIMEOUT_SECONDS": "3"}], indirect=True)
async def test_an_idle_session_says_goodbye_and_leaves(
    fake_discord: FakeDiscord, running_bot: tuple[VoiceBot, Application]
) -> None:
    bot, app = running_bot
    channel = fake_discord.voice_channel()
    alice = await fake_discord.add_simulated_user("alice", channel=channel)
    voice_channel = bot.get_channel(channel.id)
    assert isinstance(voice_channel, discord.VoiceChannel)
    sessions = bot.sessions
    assert sessions is not None
    assert app.store is not None
    guild_id = fake_discord.guild.id
    with captured_logs() as logs:
        session = await sessions.start(
            voice_channel, started_by=alice.user.id, text_channel_id=None
        )
        connection = await fake_discord.voice.wait_for_connection(guild_id)
        assert [p.guild_id for p in await app.store.desired_presence()] == [guild_id]
        pipeline = sessions.observer
        assert isinstance(pipeline, VoicePipeline)
        guild = pipeline.guilds[guild_id]
        await sessions.wait_until(lambda: guild_id not in sessions.sessions, within=60)
        left_at = time.monotonic()

    assert left_at - session.last_activity >= 3.0  # nobody spoke for the whole timeout
    ended = [entry for entry in logs if entry["event"] == "voice session ended"]
    assert [entry["context"] for entry in ended] == [{"reason": "idle"}]
    assert any(entry["event"] == "goodbye spoken" for entry in logs)
    left = await fake_discord.recorder.wait_for(
        "gateway_voice_state",
        lambda e: e.data["data"]["channel_id"] is None,
    )
    assert left is not None
    assert await app.store.desired_presence() == []  # not rejoined after a restart
    assert guild_id not in pipeline.guilds
    assert guild._worker.done()  # the session's pipeline was closed after the goodbye
    heard = (await transcribe_heard(connection)).lower()
    assert "quiet" in heard, (heard, GOODBYES["idle"])
    assert "leaving" in heard, (heard, GOODBYES["idle"])


async def test_the_agent_gets_only_the_last_twenty_turns_of_a_long_conversation(
    fake_discord: FakeDiscord, discord_clients: ClientRunner, tmp_path: Path
) -> None:
    """22 spoken turns: the 22nd request carries turns 2-21 as history, not 1-21."""
    hello = await synthesize_48k_stereo("Okay.", trailing_silence=0.0)
    async with (
        FakeOpenAITranscriptions() as stt,
        FakeOpenClawGateway(reply="Noted.") as gateway,
    ):
        settings = {
            **openai_stt(stt),
            "AGENT_PROVIDER": "openclaw",
            "OPENCLAW_GATEWAY_URL": gateway.base_url,
            "OPENCLAW_GATEWAY_TOKEN": TOKEN,
        }
        async with bot_running(fake_discord, discord_clients, tmp_path, settings) as (bot, _):
            (alice,), _, guild = await join_with(fake_discord, bot, ["alice"])
            outcomes = watch_outcomes(guild)
            for turn in range(1, 23):
                stt.transcript = f"Note number {turn}."
                await alice.speak(hello)
                outcome = await outcomes.wait_for_total(turn)
                assert outcome.status == "completed", (turn, outcome)
                await wait_until_quiet(fake_discord)  # talking over "Noted." interrupts it

    def said(body: dict[str, Any]) -> list[str]:
        return [m["content"].split(": ", 1)[1] for m in body["messages"] if m["role"] == "user"]

    assert len(gateway.bodies) == 22
    assert said(gateway.bodies[20]) == [f"Note number {n}." for n in range(1, 22)]
    assert said(gateway.bodies[21]) == [f"Note number {n}." for n in range(2, 23)]
    answers = [m for m in gateway.bodies[21]["messages"] if m["role"] == "assistant"]
    assert [m["content"] for m in answers] == ["Noted."] * 20
    # Bounded, not growing: the request for turn 22 is no longer than the one for turn 21.
    assert len(gateway.bodies[21]["messages"]) == len(gateway.bodies[20]["messages"])
    assert len(guild.agent_session.history) == 40
