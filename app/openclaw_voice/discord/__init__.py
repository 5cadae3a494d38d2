"""Discord side of the bot: client, endpoints, commands, voice receive and playback."""
