"""Text made speakable: markdown/emoji/URL cleaning and sentence splitting (whole and streamed)."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Final
from urllib.parse import urlsplit

import sentencex  # type: ignore[import-untyped]

Length = Callable[[str], int]

CODE_OMITTED: Final = "Code omitted."

_FENCE = re.compile(r"^[ \t]*(```|~~~).*?(?:^[ \t]*\1[ \t]*$|\Z)", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`+([^`\n]*?)`+")
_IMAGE = re.compile(r"!\[([^\]\n]{0,300})\]\([^)\n]{0,2000}\)")
_LINK = re.compile(r"\[([^\]\n]{1,300})\]\([^)\n]{0,2000}\)")
_REF_LINK = re.compile(r"\[([^\]\n]{1,300})\]\[[^\]\n]{0,300}\]")
_LINK_DEFINITION = re.compile(r"^[ \t]*\[[^\]\n]+\]:[ \t]*\S+.*$", re.MULTILINE)
_AUTOLINK = re.compile(r"<((?:https?|ftp)://[^>\s]+)>", re.IGNORECASE)
_URL = re.compile(
    r"\b(?:https?://|ftp://|www\.)[^\s<>()\[\]\"']*[^\s<>()\[\]\"'.,;:!?]", re.IGNORECASE
)
_DISCORD_EMOJI = re.compile(r"<a?:\w+:\d+>")
_DISCORD_MENTION = re.compile(r"<[@#][!&]?\d+>")
_SHORTCODE = re.compile(r"(?<![\w:]):[a-z0-9_+-]{2,}:(?![\w:])")
_HTML_TAG = re.compile(r"</?[a-zA-Z][^>\n]*>")
_HEADER = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.*?)[ \t#]*$")
_SETEXT = re.compile(r"^[ \t]{0,3}(=+|-+)[ \t]*$")
_RULE = re.compile(r"^[ \t]{0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_QUOTE = re.compile(r"^[ \t]*(?:>[ \t]?)+")
_BULLET = re.compile(r"^[ \t]*[-*+•][ \t]+(?:\[[ xX]\][ \t]+)?")
_NUMBERED = re.compile(r"^[ \t]*(\d{1,3})[.)][ \t]+")
_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(?:\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$")
# Spans are bounded ({1,300}) so odd input cannot make the lazy scans quadratic.
_EMPHASIS = (
    re.compile(r"(\*{1,3})(?=\S)(.{1,300}?)(?<=\S)\1"),
    re.compile(r"(?<!\w)(_{1,3})(?=\S)(.{1,300}?)(?<=\S)\1(?!\w)"),
    re.compile(r"(~~)(?=\S)(.{1,300}?)(?<=\S)\1"),
)
_SPEAKABLE_SYMBOLS: Final = {
    "&": " and ",
    "°": " degrees ",
    "→": " to ",
    "≈": " about ",
    " = ": " equals ",
}
_STRAY = re.compile(r"[*_~`#|^\\<>{}\[\]=]+")
_DROPPED_CATEGORIES: Final = frozenset({"So", "Sk", "Cs", "Co", "Cn"})
_EMOJI_JOINERS: Final = frozenset({"\u200d", "\ufe0e", "\ufe0f", "\u20e3"})
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?)])")
_REPEATED_PUNCT = re.compile(r"([.,;:!?])(?:\s*[,;:]|\s+\.)+")
_EMPTY_BRACKETS = re.compile(r"\(\s*\)")
_TERMINAL = frozenset(".!?:;,…")


def _url_words(url: str) -> str:
    """A URL as words worth hearing: its domain (``www.`` dropped), or "a link"."""
    target = url if "://" in url else f"http://{url}"
    host = urlsplit(target.rstrip(".,;:!?")).hostname or ""
    host = host.removeprefix("www.")
    return f" {host} " if host else " a link "


def _strip_emoji(text: str) -> str:
    kept: list[str] = []
    for char in text:
        if char in _EMOJI_JOINERS:
            continue
        category = unicodedata.category(char)
        if category in _DROPPED_CATEGORIES or (category == "Cc" and char not in "\n\t"):
            kept.append(" ")
        else:
            kept.append(char)
    return "".join(kept)


def _inline(text: str) -> str:
    """Inline markdown → plain words (code spans, links, emphasis, URLs, emoji)."""
    text = _INLINE_CODE.sub(r"\1", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REF_LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(lambda m: _url_words(m.group(1)), text)
    text = _URL.sub(lambda m: _url_words(m.group(0)), text)
    text = _DISCORD_EMOJI.sub(" ", text)
    text = _DISCORD_MENTION.sub(" ", text)
    text = _SHORTCODE.sub(" ", text)
    text = _HTML_TAG.sub(" ", text)
    for pattern in _EMPHASIS:
        previous = None
        while previous != text:
            previous = text
            text = pattern.sub(r"\2", text)
    for symbol, words in _SPEAKABLE_SYMBOLS.items():
        text = text.replace(symbol, words)
    text = _strip_emoji(text)
    return _STRAY.sub(" ", text)


def _ends_sentence(line: str) -> str:
    line = line.strip()
    if line and line[-1] not in _TERMINAL and not line.endswith(('"', "'", ")")):
        return f"{line}."
    return line


def clean_for_speech(text: str) -> str:
    """Markdown, emoji, URLs and stray symbols removed; one line of speakable text.

    Code blocks become "Code omitted."; links become their text; bare URLs their domain;
    headers, list items and table rows end as sentences so the voice pauses after them.
    """
    text = html.unescape(unicodedata.normalize("NFC", text)).replace("\r\n", "\n")
    text = _FENCE.sub(f"\n\n{CODE_OMITTED}\n\n", text)
    text = _LINK_DEFINITION.sub("", text)
    lines: list[str] = []
    paragraph: list[str] = []

    def end_paragraph() -> None:
        if paragraph:
            lines.append(_ends_sentence(" ".join(paragraph)))
            paragraph.clear()

    for raw in text.split("\n"):
        if not raw.strip() or _RULE.match(raw) or (_TABLE_RULE.match(raw) and "-" in raw):
            end_paragraph()
            continue
        if _SETEXT.match(raw) and paragraph:
            end_paragraph()
            continue
        line = _QUOTE.sub("", raw)
        header = _HEADER.match(line)
        structural = header is not None or bool(_BULLET.match(line) or _NUMBERED.match(line))
        if header is not None:
            line = header.group(1)
        line = _BULLET.sub("", line)
        line = _NUMBERED.sub(r"\1. ", line)
        is_row = line.strip().startswith("|") or line.count("|") >= 2
        if is_row:
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            line = ", ".join(cell for cell in cells if cell)
        line = _inline(line).strip()
        if not line:
            continue
        if structural or is_row:
            end_paragraph()
            lines.append(_ends_sentence(line))
        else:
            paragraph.append(line)
    end_paragraph()
    spoken = " ".join(line for line in lines if line.strip(" .,;:"))
    spoken = _EMPTY_BRACKETS.sub(" ", spoken)
    spoken = re.sub(r"\s+", " ", spoken)
    spoken = _REPEATED_PUNCT.sub(r"\1", spoken)
    spoken = _SPACE_BEFORE_PUNCT.sub(r"\1", spoken).replace("( ", "(")
    return spoken.strip(" ,;:")


# --- sentences -----------------------------------------------------------------------------


# A segment that ends in a list number ("1. " alone, or "Steps: 1. ") belongs to the next.
_LIST_NUMBER = re.compile(r"(?:.*:\s*|.*\n\s*)?\d{1,3}[.)]\s*", re.DOTALL)


def _segments(text: str, language: str = "en") -> list[str]:
    """sentencex's sentences, each with its trailing whitespace (they concatenate to ``text``).

    A list number ("1. ") that sentencex returns at the end of a segment is joined to
    what follows.
    """
    if not text.strip():
        return []
    found: list[str] = []
    for segment in sentencex.segment(language, text):
        if found and _LIST_NUMBER.fullmatch(found[-1]):
            found[-1] += segment
        else:
            found.append(str(segment))
    return found


_CLAUSE_BREAK = re.compile(r"[,;:\u2014\u2013)](?=\s)")  # also em and en dashes


def _cut_point(window: str) -> int:
    """Where to cut an over-long run of text: after clause punctuation, else a space."""
    floor = max(1, len(window) // 3)  # never a tiny (or empty) first piece
    cut = max((m.end() for m in _CLAUSE_BREAK.finditer(window)), default=0)
    if cut < floor:
        cut = window.rfind(" ") + 1
    if cut < floor:
        cut = len(window)
    return cut


def _hard_split(sentence: str, max_chars: int, length: Length) -> list[str]:
    """A sentence longer than ``max_chars`` cut at clause punctuation, else spaces, else hard."""
    pieces: list[str] = []
    rest = sentence.strip()
    while length(rest) > max_chars:
        window = rest[:max_chars]
        while length(window) > max_chars and len(window) > 1:  # a byte measure (Google)
            window = window[: max(1, len(window) * max_chars // length(window) - 1)]
        cut = _cut_point(window)
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return pieces


def split_sentences(
    text: str, max_chars: int | None = None, *, length: Length = len, language: str = "en"
) -> list[str]:
    """Sentences of ``text`` (stripped, none empty), each at most ``max_chars`` long.

    Boundaries come from sentencex (abbreviations, decimals, ellipses, quotes handled); a
    sentence over the limit is cut at clause punctuation or spaces. ``length`` measures
    (``len`` for characters; a byte count for APIs that limit bytes).
    """
    if max_chars is not None and max_chars < 1:
        raise ValueError("max_chars must be at least 1")
    sentences: list[str] = []
    for segment in _segments(text, language):
        sentence = segment.strip()
        if not sentence:
            continue
        if max_chars is not None and length(sentence) > max_chars:
            sentences.extend(_hard_split(sentence, max_chars, length))
        else:
            sentences.append(sentence)
    return sentences


def pack_sentences(sentences: Iterable[str], max_chars: int, *, length: Length = len) -> list[str]:
    """Consecutive sentences joined into as few parts as fit ``max_chars`` each, in order."""
    parts: list[str] = []
    current = ""
    for sentence in sentences:
        candidate = f"{current} {sentence}" if current else sentence
        if current and length(candidate) > max_chars:
            parts.append(current)
            current = sentence
        else:
            current = candidate
    if current:
        parts.append(current)
    return parts


def split_for_requests(text: str, max_chars: int, *, length: Length = len) -> list[str]:
    """``text`` in request-sized parts (≤ ``max_chars``), cut only at sentence boundaries."""
    if length(text) <= max_chars:
        return [text] if text.strip() else []
    return pack_sentences(split_sentences(text, max_chars, length=length), max_chars, length=length)


# Characters that may end a sentence (ASCII, ellipsis, ideographic and full-width marks).
_BOUNDARY_HINTS: Final = frozenset(".!?;\n\u2026\u3002\uff01\uff1f")
_FENCE_MARK = re.compile(r"```|~~~")


class SentenceChunker:
    """Turns a stream of text deltas (an agent's tokens) into complete sentences.

    ``feed`` returns the sentences completed so far; ``flush`` the remainder at the end.
    A sentence counts as complete once text after it shows the boundary (so "Dr." or
    "3." wait for what follows). A fenced code block is returned whole, as one item, once
    it closes (the cleaner turns it into "Code omitted."); a run-on longer than
    ``max_chars`` is cut at a clause or a space.
    """

    def __init__(self, max_chars: int = 400, *, language: str = "en") -> None:
        if max_chars < 20:
            raise ValueError("max_chars must be at least 20")
        self.max_chars = max_chars
        self.language = language
        self._buffer = ""

    @property
    def pending(self) -> str:
        """Text received but not yet returned as a sentence."""
        return self._buffer

    def feed(self, delta: str) -> list[str]:
        if not delta:
            return []
        self._buffer += delta
        sentences: list[str] = []
        while (fence := _FENCE_MARK.search(self._buffer)) is not None:
            sentences.extend(split_sentences(self._buffer[: fence.start()], language=self.language))
            close = self._buffer.find(fence.group(0), fence.end())
            if close < 0:
                self._buffer = self._buffer[fence.start() :]
                return sentences  # inside a code block: wait for it to close
            end = close + len(fence.group(0))
            sentences.append(self._buffer[fence.start() : end])
            self._buffer = self._buffer[end:]
        # A boundary shows once text follows it, so look at the whole buffer, not the delta.
        if len(self._buffer) > self.max_chars or not _BOUNDARY_HINTS.isdisjoint(self._buffer):
            sentences.extend(self._complete_sentences())
        return sentences

    def _complete_sentences(self) -> list[str]:
        segments = _segments(self._buffer, self.language)
        if not segments:
            return []
        complete, last = segments[:-1], segments[-1]
        done = "".join(complete)
        if not self._buffer.startswith(done):  # the text was altered: trust the last one
            done = self._buffer[: max(0, len(self._buffer) - len(last))]
        sentences = [segment.strip() for segment in complete if segment.strip()]
        rest = self._buffer[len(done) :]
        while len(rest) > self.max_chars:
            cut = _cut_point(rest[: self.max_chars])
            if piece := rest[:cut].strip():
                sentences.append(piece)
            rest = rest[cut:]
        self._buffer = rest
        return sentences

    def flush(self) -> str | None:
        """The rest of the text as a last sentence, or None if nothing is left."""
        rest, self._buffer = self._buffer.strip(), ""
        return rest or None
