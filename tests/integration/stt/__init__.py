"""Cloud speech-to-text providers through their real SDKs / REST APIs against local fakes."""
