"""Cloud TTS providers through their real SDK/REST clients against local fakes."""
