"""openclaw-discord-voice: a Discord voice assistant for the OpenClaw agent."""

__version__ = "0.1.0"
