"""Speech-to-text: the protocol, cloud providers (OpenAI, ElevenLabs, Google, Azure), chain."""
