"""Tests of the text-to-speech text handling, cache, registry and helpers."""
