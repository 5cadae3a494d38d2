"""Text cleaning for speech and sentence splitting, whole and incremental."""

from __future__ import annotations

import random

import pytest

from openclaw_voice.tts.text import (
    SentenceChunker,
    clean_for_speech,
    pack_sentences,
    split_for_requests,
    split_sentences,
)


@pytest.mark.parametrize(
    ("markdown", "spoken"),
    [
        ("Plain text.", "Plain text."),
        ("# Title\nBody text here.", "Title. Body text here."),
        ("Some **bold**, *italic*, __strong__ and ~~gone~~ words.", None),
        ("Use `pip install x` now.", "Use pip install x now."),
        ("```python\nprint('hi')\n```\nAfter the code.", "Code omitted. After the code."),
        ("Read [the guide](https://example.com/guide) first.", "Read the guide first."),
        ("![a cat](https://x.io/cat.png) is cute.", "a cat is cute."),
        ("See https://www.python.org/downloads/ today.", "See python.org today."),
        ("Go to <https://b.org/x>.", "Go to b.org."),
        ("Done 🎉👍🏽 great ❤️ yes", "Done great yes."),
        ("Flags 🇫🇷 and family 👨‍👩‍👧 here.", "Flags and family here."),
        ("- one\n- two\n* three", "one. two. three."),
        ("1. first\n2. second", "1. first. 2. second."),
        ("> quoted\n> more", "quoted more."),
        ("| a | b |\n|---|---|\n| 1 | 2 |", "a, b. 1, 2."),
        ("Hi <@123456> <:wave:987654321> :smile: there", "Hi there."),
        ("Tom &amp; Jerry &lt;3", "Tom and Jerry 3."),
        ("It is 25°C → warm, x = 1.", "It is 25 degrees C to warm, x equals 1."),
        ("line one\nline two continues.\n\nNew paragraph", None),
        ("Wait... really?!", "Wait... really?!"),
        ("snake_case_name stays", None),
        ("***\n---\n", ""),
        ("   \n\t ", ""),
        ("🎉", ""),
    ],
)
def test_clean_for_speech(markdown: str, spoken: str | None) -> None:
    cleaned = clean_for_speech(markdown)
    if spoken is not None:
        assert cleaned == spoken
    for symbol in "*_`#|~[]<>{}":
        assert symbol not in cleaned
    assert "  " not in cleaned
    assert "http" not in cleaned


def test_clean_keeps_wrapped_paragraphs_as_one_sentence() -> None:
    assert clean_for_speech("line one\nline two continues.\n\nNew paragraph") == (
        "line one line two continues. New paragraph."
    )


def test_emphasis_keeps_its_words() -> None:
    assert clean_for_speech("Some **bold**, *italic*, __strong__ and ~~gone~~ words.") == (
        "Some bold, italic, strong and gone words."
    )


def test_unterminated_code_fence_is_dropped_to_the_end() -> None:
    assert clean_for_speech("Look:\n```\ncode without end") == "Look: Code omitted."


def test_setext_header_ends_a_sentence() -> None:
    assert clean_for_speech("Title\n=====\nBody.") == "Title. Body."


def test_split_sentences_handles_abbreviations_numbers_and_lists() -> None:
    text = (
        "Dr. Smith paid $3.50 at 5 p.m. on Monday. He met Mr. Jones, i.e. his friend! "
        "Was it item 71? Then item 72. Steps: 1. Open it. 2. Close it."
    )
    assert split_sentences(text) == [
        "Dr. Smith paid $3.50 at 5 p.m. on Monday.",
        "He met Mr. Jones, i.e. his friend!",
        "Was it item 71?",
        "Then item 72.",
        "Steps: 1. Open it.",
        "2. Close it.",
    ]


def test_split_sentences_cuts_over_long_sentences_at_clauses_then_spaces() -> None:
    sentence = "word " * 30 + "then, a clause; " + "another " * 30
    pieces = split_sentences(sentence, 100)
    assert all(len(piece) <= 100 for piece in pieces)
    assert " ".join(pieces).split() == sentence.split()
    unbroken = "x" * 250
    assert split_sentences(unbroken, 100) == ["x" * 100, "x" * 100, "x" * 50]


def test_split_sentences_rejects_a_silly_limit() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        split_sentences("Hi.", 0)


def test_split_sentences_of_nothing() -> None:
    assert split_sentences("  \n ") == []
    assert split_for_requests("   ", 10) == []


def test_pack_sentences_fills_parts_in_order() -> None:
    assert pack_sentences(["One.", "Two.", "Three.", "Four."], 10) == [
        "One. Two.",
        "Three.",
        "Four.",
    ]


def test_split_for_requests_measures_with_the_given_length() -> None:
    text = "Déjà vu é. " * 40
    parts = split_for_requests(text, 100, length=lambda s: len(s.encode()))
    assert all(len(part.encode()) <= 100 for part in parts)
    assert " ".join(parts) == text.strip()
    assert split_for_requests("Short.", 100) == ["Short."]


def test_hard_split_respects_a_byte_measure() -> None:
    pieces = split_sentences("é" * 300, 100, length=lambda s: len(s.encode()))
    assert all(len(piece.encode()) <= 100 for piece in pieces)
    assert "".join(pieces) == "é" * 300


def feed_all(chunker: SentenceChunker, deltas: list[str]) -> list[str]:
    sentences: list[str] = []
    for delta in deltas:
        sentences.extend(chunker.feed(delta))
    last = chunker.flush()
    return [*sentences, last] if last else sentences


def test_chunker_matches_the_whole_text_split_whatever_the_token_boundaries() -> None:
    text = (
        "Hello Dr. Smith. How are you today? I paid $3.50 for it, i.e. cheap! "
        "Then item 72. Steps: 1. Open it. 2. Close it. Last one without a stop"
    )
    expected = split_sentences(text)
    for size in (1, 2, 3, 5, 8, 13, 400):
        deltas = [text[i : i + size] for i in range(0, len(text), size)]
        assert feed_all(SentenceChunker(), deltas) == expected, size


def test_chunker_returns_a_sentence_once_the_next_one_starts() -> None:
    chunker = SentenceChunker()
    assert chunker.feed("It is 5 p.m.") == []  # "p.m." might continue the sentence
    assert chunker.feed(" Then") == ["It is 5 p.m."]
    assert chunker.pending == "Then"
    assert chunker.flush() == "Then"
    assert chunker.flush() is None
    assert chunker.feed("") == []


def test_chunker_keeps_code_fences_whole() -> None:
    deltas = ["Here is code:\n", "```py", "\nx = 1.\ny = 2.\n", "``", "`\nAfter it. ", "Done."]
    sentences = feed_all(SentenceChunker(), deltas)
    assert sentences == ["Here is code:", "```py\nx = 1.\ny = 2.\n```", "After it.", "Done."]
    assert [clean_for_speech(s) for s in sentences][1] == "Code omitted."


def test_chunker_cuts_run_ons_at_the_limit() -> None:
    chunker = SentenceChunker(max_chars=50)
    words = "and then more words, " * 10
    out: list[str] = []
    for word in words.split(" "):
        out.extend(chunker.feed(word + " "))
    assert out
    assert all(len(piece) <= 50 for piece in out)
    rest = chunker.flush() or ""
    assert " ".join([*out, rest]).split() == words.split()


def test_chunker_rejects_a_tiny_limit() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        SentenceChunker(max_chars=5)


def test_splitting_never_loses_words_or_exceeds_the_limit() -> None:
    rng = random.Random(5)
    words = ["Dr.", "e.g.", "3.50", "item", "72.", "ok!", "why?", "…", "é", "—", "x" * 30, "1)"]
    for _ in range(300):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 60)))
        limit = rng.randint(1, 80)
        pieces = split_sentences(text, limit)
        assert all(len(piece) <= limit for piece in pieces)
        assert "".join("".join(pieces).split()) == "".join(text.split())
        deltas = [text[i : i + 3] for i in range(0, len(text), 3)]
        streamed = feed_all(SentenceChunker(max_chars=20), deltas)
        assert "".join("".join(streamed).split()) == "".join(text.split())
