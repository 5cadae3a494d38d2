"""Run the fake Discord standalone: ``python -m tests.fakes.discord [--guilds N] [--seed S]``.

Logs the endpoints to point a bot at (``DiscordEndpoints(api_base, gateway_url,
ca_bundle)``) and the bot token, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import discord.opus
import structlog

from tests.fakes.discord.server import FakeDiscord


async def serve(guilds: int, seed: int, dave: int, speakers: int) -> None:
    log = structlog.get_logger()
    async with FakeDiscord(guilds=guilds, seed=seed, dave_protocol_version=dave) as fake:
        for guild in fake.world.guilds.values():
            for index in range(speakers):
                await fake.add_simulated_user(
                    f"speaker-{index}", guild=guild, channel=guild.voice_channels()[0]
                )
        endpoints = fake.endpoints
        log.info(
            "fake_discord.serving",
            api_base=endpoints.api_base,
            gateway_url=endpoints.gateway_url,
            ca_bundle=str(endpoints.ca_bundle),
            token=fake.token,
            guilds=[guild.id for guild in fake.world.guilds.values()],
        )
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--guilds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dave", type=int, default=1, choices=[0, 1])
    parser.add_argument("--speakers", type=int, default=0, help="simulated users per guild")
    args = parser.parse_args()
    discord.opus._load_default()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.guilds, args.seed, args.dave, args.speakers))


if __name__ == "__main__":
    main()
