"""Voice websocket close codes on demand, the fake's voice RESUME, and the client's reactions."""

from __future__ import annotations

import json
import ssl

import aiohttp
import pytest

from openclaw_voice.discord.endpoints import ssl_context
from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.fixtures import ClientRunner
from tests.integration.fake_discord.helpers import connect_voice

NO_DAVE = {"dave_protocol_version": 0}


def identifies(fake: FakeDiscord) -> int:
    return len(fake.recorder.of_kind("voice_identify"))


@pytest.mark.parametrize("fake_discord", [NO_DAVE], indirect=True)
@pytest.mark.parametrize("code", [4006, 4009])
async def test_session_close_codes_make_the_client_identify_again(
    fake_discord: FakeDiscord, discord_clients: ClientRunner, code: int
) -> None:
    await connect_voice(fake_discord, discord_clients)
    await fake_discord.voice.close_voice(fake_discord.guild.id, code)
    closed = await fake_discord.recorder.wait_for("voice_close")
    assert closed.data["code"] == code
    # discord.py leaves (op 4 without channel), joins again and sends a fresh IDENTIFY
    await fake_discord.recorder.wait_for("voice_identify", lambda e: identifies(fake_discord) == 2)
    voice_ops = [
        e.data["data"]["channel_id"] for e in fake_discord.recorder.of_kind("gateway_voice_state")
    ]
    assert voice_ops[-2] is None
    assert voice_ops[-1] == fake_discord.voice_channel().id


@pytest.mark.parametrize("fake_discord", [NO_DAVE], indirect=True)
async def test_4014_after_a_kick_disconnects_the_client(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    _, voice, connection = await connect_voice(fake_discord, discord_clients)
    await fake_discord.kick_bot_from_voice(code=4014)
    assert (await fake_discord.recorder.wait_for("voice_close")).data["code"] == 4014
    left = await fake_discord.recorder.wait_for(
        "gateway_voice_state", lambda e: e.data["data"]["channel_id"] is None
    )
    assert left.data["data"]["guild_id"] == fake_discord.guild.id
    assert not voice.is_connected()
    assert connection.closed.is_set()
    assert identifies(fake_discord) == 1


@pytest.mark.parametrize("fake_discord", [NO_DAVE], indirect=True)
async def test_4015_makes_discord_py_reassert_its_voice_state(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    await connect_voice(fake_discord, discord_clients)
    await fake_discord.voice.close_voice(fake_discord.guild.id, 4015)
    # discord.py 2.7.1 answers 4015 by re-sending op 4 for the same channel (it never
    # sends a voice RESUME there); the fake echoes the state without a new server update.
    again = await fake_discord.recorder.wait_for(
        "gateway_voice_state",
        lambda e: len(fake_discord.recorder.of_kind("gateway_voice_state")) == 2,
    )
    assert again.data["data"]["channel_id"] == fake_discord.voice_channel().id
    servers = [
        e
        for e in fake_discord.recorder.of_kind("gateway_dispatch")
        if e.data["event"] == "VOICE_SERVER_UPDATE"
    ]
    assert len(servers) == 1


@pytest.mark.parametrize("fake_discord", [NO_DAVE], indirect=True)
async def test_close_on_identify_is_retried_by_the_client(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    fake_discord.voice.close_on_identify.append(4006)
    _, voice, _ = await connect_voice(fake_discord, discord_clients)
    assert voice.is_connected()
    assert [e.data["code"] for e in fake_discord.recorder.of_kind("voice_close")] == [4006]
    assert identifies(fake_discord) == 2


@pytest.mark.parametrize("fake_discord", [NO_DAVE], indirect=True)
async def test_voice_resume_is_answered_with_resumed(
    fake_discord: FakeDiscord, discord_clients: ClientRunner
) -> None:
    _, _, connection = await connect_voice(fake_discord, discord_clients)
    context: ssl.SSLContext = ssl_context(fake_discord.endpoints)
    url = f"wss://{fake_discord.voice.endpoint}/?v=8"
    data: dict[str, object] = {
        "server_id": str(connection.guild_id),
        "session_id": connection.session_id,
        "token": connection.token,
        "seq_ack": 1,
    }
    resume = {"op": 7, "d": data}
    async with aiohttp.ClientSession() as session, session.ws_connect(url, ssl=context) as ws:
        hello = json.loads((await ws.receive(timeout=5)).data)
        assert hello["op"] == 8
        await ws.send_str(json.dumps(resume))
        resumed = json.loads((await ws.receive(timeout=5)).data)
        assert resumed["op"] == 9
    async with aiohttp.ClientSession() as session, session.ws_connect(url, ssl=context) as ws:
        await ws.receive(timeout=5)
        data["session_id"] = "unknown"
        await ws.send_str(json.dumps(resume))
        closing = await ws.receive(timeout=5)
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert closing.data == 4006
