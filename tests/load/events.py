"""Disruptions a load run carries out at set times (``LoadProfile.events``, see ``EVENTS``).

Each action returns what it observed (e.g. how long the bot took to rejoin), which the
harness records in the report's ``events``. Actions on one guild's voice connection wait
for that guild's conversation to be between turns, so no question is cut in half by the
harness itself; SIGTERM is sent while an answer is being heard, or a question asked, on
purpose.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.fakes.discord import FakeDiscord
from tests.load.driver import GuildConversation
from tests.load.profile import STORAGE_EVENTS
from tests.load.storage import BotStorage

# The bot's wall clock, shifted by the seconds in a file the harness writes (clockshift.c,
# built here with the C compiler, LD_PRELOADed into the bot only).
CLOCKSHIFT_SOURCE = Path(__file__).with_name("clockshift.c")
CLOCK_JUMP_SECONDS = 3600
REJOIN_WITHIN = 60.0
HEARD_WITHIN = 60.0
MID_QUESTION_SECONDS = 1.0  # questions are 2-3 s long


@dataclass
class EventContext:
    fake: FakeDiscord
    conversations: list[GuildConversation]
    bot_pid: int
    send: Callable[[dict[str, Any]], None]  # a command to the bot's process
    clock_file: Path | None  # the bot's wall-clock shift, when it runs under clockshift
    storage: BotStorage | None = None  # the bot's state and log, for the storage faults


def compiler() -> str | None:
    return shutil.which("cc")


def clockshift_environment(out_dir: Path) -> tuple[dict[str, str], Path]:
    """The bot's environment additions for a wall clock the harness can move, and the file
    holding the shift (seconds)."""
    cc = compiler()
    if cc is None:
        raise RuntimeError("clock events need a C compiler (cc) to build clockshift.c")
    library = out_dir / "clockshift.so"
    subprocess.run(  # noqa: S603 - our compiler on our source
        [cc, "-shared", "-fPIC", "-O2", "-o", str(library), str(CLOCKSHIFT_SOURCE), "-ldl"],
        check=True,
        capture_output=True,
    )
    clock_file = out_dir / "bot-clock-shift"
    clock_file.write_text("0\n")
    return {"LD_PRELOAD": str(library), "CLOCKSHIFT_FILE": str(clock_file)}, clock_file


async def perform(action: str, context: EventContext) -> dict[str, Any]:
    """Carry out ``action`` (a key of ``EVENTS``)."""
    fake = context.fake
    if action == "gateway-resume":
        await fake.gateway.drop(resumable=True)
    elif action == "gateway-drop":
        await fake.gateway.drop(resumable=False)
    elif action == "gateway-reconnect":
        await fake.gateway.request_reconnect()
    elif action.startswith("voice-close-"):
        return await _close_voice(context, int(action.removeprefix("voice-close-")))
    elif action == "sigterm":
        return await _terminate(context)
    elif action == "sigterm-mid-question":
        return await _terminate_mid_question(context)
    elif action.endswith(("-down", "-up")):
        stage, _, state = action.rpartition("-")
        context.send({"op": "outage", "stage": stage, "down": state == "down"})
    elif action in ("clock-forward", "clock-back"):
        forward = action == "clock-forward"
        return _jump_clock(context, CLOCK_JUMP_SECONDS if forward else -CLOCK_JUMP_SECONDS)
    elif action in STORAGE_EVENTS:
        return await _storage_fault(context, action)
    else:
        raise ValueError(f"unknown event {action!r}")
    return {}


async def _close_voice(context: EventContext, code: int) -> dict[str, Any]:
    """Close the first guild's voice websocket with ``code`` between two of its turns and
    wait until the bot is back: a new voice connection, its DAVE group re-formed."""
    fake, conversation = context.fake, context.conversations[0]
    guild_id = conversation.guild_id
    channel = fake.world.guilds[guild_id].voice_channels()[0]
    async with conversation.turn_lock:
        old = fake.voice.connections.get(guild_id)
        mark = len(fake.recorder.events)
        closed_at = time.monotonic()
        await fake.voice.close_voice(guild_id, code)
        await fake.recorder.wait_for(
            "voice_select_protocol",
            lambda event: (
                event.data["guild_id"] == guild_id
                and fake.voice.connections.get(guild_id) is not old
            ),
            within=REJOIN_WITHIN,
            since=mark,
        )
        connection = await fake.voice.wait_for_connection(guild_id, within=REJOIN_WITHIN)
        if fake.voice.dave_protocol_version:
            await fake.recorder.wait_for(
                "dave_transition_executed",
                lambda event: event.data["channel_id"] == channel.id,
                within=REJOIN_WITHIN,
                since=mark,
            )
        return {
            "guild_id": guild_id,
            "code": code,
            "rejoin_seconds": round(time.monotonic() - closed_at, 3),
            "new_connection": connection is not old,
        }


async def _terminate(context: EventContext) -> dict[str, Any]:
    """SIGTERM to the bot while the first guild's answer is being heard; nobody asks again."""
    conversation = context.conversations[0]
    await asyncio.wait_for(conversation.reply_heard.wait(), HEARD_WITHIN)
    return _stop_asking_and_terminate(context, conversation)


async def _terminate_mid_question(context: EventContext) -> dict[str, Any]:
    """SIGTERM to the bot a second into the last guild's next question; nobody asks again."""
    conversation = context.conversations[-1]
    await asyncio.wait_for(_next_question(conversation), HEARD_WITHIN)
    await asyncio.sleep(MID_QUESTION_SECONDS)  # the scenario: well into the question
    return _stop_asking_and_terminate(context, conversation)


def _stop_asking_and_terminate(
    context: EventContext, conversation: GuildConversation
) -> dict[str, Any]:
    for each in context.conversations:
        each.stop_asking = True
    os.kill(context.bot_pid, signal.SIGTERM)
    return {"sent_at": time.monotonic(), "guild_id": conversation.guild_id}


async def _next_question(conversation: GuildConversation) -> None:
    """Until ``conversation`` begins to ask a question (not one already under way)."""
    if conversation.asking.is_set():
        await conversation.reply_heard.wait()  # heard once that question has ended
    await conversation.asking.wait()


def _jump_clock(context: EventContext, seconds: int) -> dict[str, Any]:
    if context.clock_file is None:
        raise RuntimeError("clock events need the bot under clockshift (see run_load)")
    current = int(context.clock_file.read_text().strip() or "0")
    context.clock_file.write_text(f"{current + seconds:d}\n")
    return {"offset_seconds": current + seconds}


async def _storage_fault(context: EventContext, action: str) -> dict[str, Any]:
    """A fault on the bot's state database or its filesystems (tests/load/storage.py)."""
    storage = context.storage
    if storage is None:
        raise RuntimeError("storage events need the run's BotStorage (see run_load)")
    if action == "state-lock":
        return await storage.lock()
    if action == "state-unlock":
        return await storage.unlock()
    if action == "state-readonly":
        return await storage.read_only()
    if action == "disk-full":
        return await storage.fill()
    return await storage.free()  # disk-freed
