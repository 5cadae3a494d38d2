"""The word error rate helper the speech tests rely on."""

from __future__ import annotations

import pytest

from tests.speech import normalise, word_error_rate


def test_normalise_ignores_case_punctuation_and_spells_small_numbers() -> None:
    assert normalise("Set a timer for 10 minutes, please!") == (
        ["set", "a", "timer", "for", "ten", "minutes", "please"]
    )
    assert normalise("It\u2019s well-known.") == ["it's", "well", "known"]


@pytest.mark.parametrize(
    ("reference", "hypothesis", "expected"),
    [
        ("what is the weather", "What is the weather?", 0.0),
        ("what is the weather", "what is weather", 0.25),  # one deletion
        ("what is the weather", "what is the the weather", 0.25),  # one insertion
        ("what is the weather", "what was the weather", 0.25),  # one substitution
        ("what is the weather", "", 1.0),
        ("", "", 0.0),
        ("", "noise", 1.0),
        ("a b", "c d e f", 2.0),  # insertions can push it past 1
    ],
)
def test_word_error_rate(reference: str, hypothesis: str, expected: float) -> None:
    assert word_error_rate(reference, hypothesis) == pytest.approx(expected)
