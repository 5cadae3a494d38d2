"""Wake-name matching against mis-hearings, and the addressing modes."""

from __future__ import annotations

import pytest

from openclaw_voice.pipeline.addressing import decide, find_wake_name


@pytest.mark.parametrize(
    "heard",
    [
        "OpenClaw, what time is it?",
        "open claw what time is it",
        "Hey Open-Claw, what time is it?",
        "open clause, what time is it",
        "opencloud what time is it",
        "what time is it, open claw?",
    ],
)
def test_mishearings_of_the_wake_name_match(heard: str) -> None:
    assert find_wake_name(heard, "OpenClaw") is not None


@pytest.mark.parametrize(
    "heard",
    ["what time is it", "open the window please", "I saw a claw machine", "", "clown"],
)
def test_other_speech_does_not_match(heard: str) -> None:
    assert find_wake_name(heard, "OpenClaw") is None


def test_leading_wake_name_is_stripped_mid_sentence_kept() -> None:
    assert (
        decide(
            "Hey OpenClaw, what's the time?", mode="wake", wake_name="OpenClaw", humans_present=3
        ).text
        == "what's the time?"
    )
    assert (
        decide("tell open claw to stop", mode="wake", wake_name="OpenClaw", humans_present=3).text
        == "tell open claw to stop"
    )


@pytest.mark.parametrize(
    ("mode", "humans", "text", "addressed"),
    [
        ("auto", 1, "what time is it", True),
        ("auto", 2, "what time is it", False),
        ("auto", 2, "OpenClaw what time is it", True),
        ("wake", 1, "what time is it", False),
        ("wake", 1, "open claw, what time is it", True),
        ("open", 5, "what time is it", True),
    ],
)
def test_modes(mode: str, humans: int, text: str, addressed: bool) -> None:
    result = decide(text, mode=mode, wake_name="OpenClaw", humans_present=humans)  # type: ignore[arg-type]
    assert result.addressed is addressed


def test_custom_wake_name() -> None:
    assert find_wake_name("Jarvis, lights on", "Jarvis") is not None
    assert find_wake_name("jarvis's lights", "Jarvis") is not None
    assert find_wake_name("lights on", "Jarvis") is None
