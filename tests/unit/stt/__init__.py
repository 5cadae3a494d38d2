"""Unit tests of the speech-to-text helpers, response parsing and the provider registry."""
