"""Point the discord.py client at real Discord or at a Discord-compatible server.

discord.py reads its REST base and gateway URL from class attributes, and builds the voice
websocket URL as ``wss://{endpoint}``; a test server (our fake Discord) or a self-hosted
Discord-compatible server therefore needs the two URLs overridden and, for the voice
websocket's TLS, a CA bundle trusted by the client's HTTP connector.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import discord.gateway
import discord.http
import yarl

DISCORD_API_BASE = "https://discord.com/api/v10"
DISCORD_GATEWAY_URL = "wss://gateway.discord.gg/"


@dataclass(frozen=True)
class DiscordEndpoints:
    """Where the client talks to: REST base URL, gateway URL, extra CA bundle for TLS."""

    api_base: str = DISCORD_API_BASE
    gateway_url: str = DISCORD_GATEWAY_URL
    ca_bundle: Path | None = None

    @property
    def is_default(self) -> bool:
        return (
            self.api_base == DISCORD_API_BASE
            and self.gateway_url == DISCORD_GATEWAY_URL
            and self.ca_bundle is None
        )


def apply_endpoints(endpoints: DiscordEndpoints) -> None:
    """Install the endpoints process-wide (discord.py keeps them as class attributes)."""
    discord.http.Route.BASE = endpoints.api_base.rstrip("/")
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(endpoints.gateway_url)


def ssl_context(endpoints: DiscordEndpoints) -> ssl.SSLContext:
    """The system trust store, plus the configured CA bundle when there is one."""
    context = ssl.create_default_context()
    if endpoints.ca_bundle is not None:
        context.load_verify_locations(cafile=str(endpoints.ca_bundle))
    return context


def make_connector(endpoints: DiscordEndpoints) -> aiohttp.TCPConnector | None:
    """A connector for ``discord.Client(connector=...)``; None keeps discord.py's default."""
    if endpoints.ca_bundle is None:
        return None
    # limit=0 as discord.py's own default: every voice websocket holds a connection, and
    # aiohttp's default pool of 100 would hang the 97th voice channel.
    return aiohttp.TCPConnector(ssl=ssl_context(endpoints), limit=0)
