"""A protocol-level fake Discord (REST, gateway, voice gateway, UDP, DAVE) for the real
discord.py client. See ``docs/testing.md``."""

from tests.fakes.discord.capture import (
    Capture,
    CapturedFrame,
    CaptureStats,
    dominant_frequency,
    opus_decoder,
)
from tests.fakes.discord.controls import Controls, PacketFaults, RestFault, VoiceFaults
from tests.fakes.discord.recorder import Recorded, Recorder
from tests.fakes.discord.rest import InteractionRecord
from tests.fakes.discord.rtp import TransportCipher, parse_header
from tests.fakes.discord.server import BOT_TOKEN, FakeDiscord
from tests.fakes.discord.simulated import SendStats, SimulatedUser, encode_pcm
from tests.fakes.discord.voice_call import Call
from tests.fakes.discord.voice_gateway import VoiceConnection

__all__ = [
    "BOT_TOKEN",
    "Call",
    "Capture",
    "CaptureStats",
    "CapturedFrame",
    "Controls",
    "FakeDiscord",
    "InteractionRecord",
    "PacketFaults",
    "Recorded",
    "Recorder",
    "RestFault",
    "SendStats",
    "SimulatedUser",
    "TransportCipher",
    "VoiceConnection",
    "VoiceFaults",
    "dominant_frequency",
    "encode_pcm",
    "opus_decoder",
    "parse_header",
]
