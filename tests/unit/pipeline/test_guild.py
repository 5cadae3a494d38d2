"""Turn-taking in one guild: continuation within the grace, queueing, barge-in.

The guild pipeline and the turn runner are the real ones; the providers are small
in-process implementations of their protocols whose behaviour the tests steer (a
recogniser that can be held, an agent that can pause after its first sentence, a
playback that can be held back), and the audio stream callbacks are driven directly,
with the voiced times the VAD would report.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable

import pytest

from openclaw_voice.agent.base import Agent, AgentSession, AgentTurn
from openclaw_voice.audio.clock import FrameClock
from openclaw_voice.audio.packets import Utterance
from openclaw_voice.audio.pcm import STT_SAMPLE_RATE, PcmAudio
from openclaw_voice.audio.vad import VadPool
from openclaw_voice.errors import ErrorKind, ProviderError, Stage
from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.pipeline.guild import (
    CONTINUATION_GRACE_SECONDS,
    GuildContext,
    GuildPipeline,
    merge_utterances,
)
from openclaw_voice.pipeline.turn import INTERRUPTED_MARK, TurnOutcome, TurnRequest, TurnRunner
from openclaw_voice.resilience import FallbackChain, RetryPolicy
from openclaw_voice.store.state import AddressingMode, GuildSettings
from openclaw_voice.stt.base import SpeechToText, Transcript, TranscriptionRequest
from openclaw_voice.tts.base import SpeechRequest

GUILD = 7
ALICE, BOB = 1, 2
# Each word is "spoken" as a run of samples of one value; the recogniser reads them back.
WORDS = {1: "alpha", 2: "beta", 3: "gamma", 4: "openclaw"}
END_OF_SPEECH = 0.5  # the guild's default end-of-speech silence


def said(user_id: int, word: int, *, ended_at: float, seconds: float = 0.5) -> Utterance:
    audio = array("h", [word] * int(STT_SAMPLE_RATE * seconds)).tobytes()
    return Utterance(user_id, PcmAudio(audio, STT_SAMPLE_RATE), ended_at - seconds, ended_at)


def read_words(audio: PcmAudio) -> str:
    samples = array("h")
    samples.frombytes(audio.data)
    words: list[str] = []
    for value in samples:
        if not words or words[-1] != WORDS[value]:
            words.append(WORDS[value])
    return " ".join(words)


class Recogniser:
    """Transcribes the word runs; ``hold`` (when set up) keeps answers back until set."""

    name = "words"

    def __init__(self) -> None:
        self.hold: asyncio.Event | None = None
        self.heard: list[str] = []  # every request, including abandoned ones
        self.requested = asyncio.Event()

    async def transcribe(self, request: TranscriptionRequest) -> Transcript:
        if not request.audio.data:
            raise ProviderError(Stage.STT, ErrorKind.EMPTY_INPUT, self.name, "no audio")
        text = read_words(request.audio)
        self.heard.append(text)
        self.requested.set()
        if self.hold is not None:
            await self.hold.wait()
        return Transcript(text, self.name, request.audio.duration_seconds)

    async def wait_for_requests(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.heard) < count:
                self.requested.clear()
                await self.requested.wait()

    async def aclose(self) -> None:
        return None


class EchoAgent:
    """Answers "You said <text>. Anything else?"; ``pause`` holds it after the first sentence."""

    name = "echo"

    def __init__(self) -> None:
        self.turns: list[str] = []
        self.pause: asyncio.Event | None = None
        self.fail_after_first_sentence = False
        self.called = asyncio.Event()

    async def reply(self, session: AgentSession, turn: AgentTurn) -> AsyncIterator[str]:
        self.turns.append(turn.text)
        self.called.set()
        yield f"You said {turn.text}. Anything"  # the next word shows the sentence ended
        if self.pause is not None:
            await self.pause.wait()
        if self.fail_after_first_sentence:
            raise ProviderError(Stage.AGENT, ErrorKind.UNAVAILABLE, self.name, "connection lost")
        yield " else?"

    async def aclose(self) -> None:
        return None


class TextVoice:
    """Speaks a sentence as one chunk whose bytes are the sentence (so playback can be read)."""

    name = "text"

    def __init__(self) -> None:
        self.hold_replies: asyncio.Event | None = None  # holds "You said ..." back
        self.fail_replies = False  # "You said ..." cannot be synthesized

    async def synthesize(self, request: SpeechRequest) -> AsyncIterator[PcmAudio]:
        if self.hold_replies is not None and request.text.startswith("You said"):
            await self.hold_replies.wait()
        if self.fail_replies and request.text.startswith("You said"):
            raise ProviderError(Stage.TTS, ErrorKind.UNAVAILABLE, self.name, "voice down")
        data = request.text.encode()
        yield PcmAudio(data + b"\0" * (len(data) % 2), 16_000)

    async def aclose(self) -> None:
        return None


class Playback:
    """Plays queued replies in order at once; ``hold`` keeps it from starting until set,
    ``slow`` keeps it on the first chunk played (audio still playing) until set."""

    def __init__(self) -> None:
        self.hold: asyncio.Event | None = None
        self.slow: asyncio.Event | None = None
        self.busy = False
        self.heard: list[str] = []
        self.interrupts = 0
        self.played = asyncio.Event()
        self._queue: asyncio.Queue[AsyncIterable[PcmAudio]] = asyncio.Queue()
        self._task = asyncio.create_task(self._play())

    def say(self, chunks: AsyncIterable[PcmAudio]) -> object:
        self._queue.put_nowait(chunks)
        return None

    @property
    def playing(self) -> bool:
        return self.busy or not self._queue.empty()

    async def _play(self) -> None:
        while True:
            chunks = await self._queue.get()
            self.busy = True
            if self.hold is not None:
                await self.hold.wait()
            async for chunk in chunks:
                self.heard.append(chunk.data.rstrip(b"\0").decode())
                self.played.set()
                if self.slow is not None:
                    await self.slow.wait()
            self.busy = self._queue.qsize() > 0

    async def wait_for(self, text: str) -> None:
        async with asyncio.timeout(5):
            while text not in self.heard:
                self.played.clear()
                await self.played.wait()

    def interrupt(self) -> None:
        self.interrupts += 1
        self.busy = False
        self._task.cancel()
        while not self._queue.empty():
            self._queue.get_nowait()
        self._task = asyncio.create_task(self._play())

    def finish(self) -> None:
        return None

    def close(self) -> None:
        self._task.cancel()


class Outcomes(deque[tuple[TurnRequest, TurnOutcome]]):
    """The pipeline's record of recent turns, which a test can wait on."""

    def __init__(self) -> None:
        super().__init__(maxlen=20)
        self.changed = asyncio.Event()

    def append(self, item: tuple[TurnRequest, TurnOutcome]) -> None:
        super().append(item)
        self.changed.set()

    async def wait_for(self, count: int) -> list[tuple[str | None, str]]:
        async with asyncio.timeout(5):
            while len(self) < count:
                self.changed.clear()
                await self.changed.wait()
        return [(outcome.transcript, outcome.status) for _, outcome in self]


class Room:
    def __init__(
        self,
        mode: AddressingMode = "open",
        may_address: Callable[[int], bool] = lambda user_id: True,
    ) -> None:
        self.stt = Recogniser()
        self.agent = EchoAgent()
        self.playback = Playback()
        self.voice = TextVoice()
        self.metrics = Metrics()
        policy = RetryPolicy(attempt_timeout=5, overall_timeout=10)
        stt_providers: list[SpeechToText] = [self.stt]
        agents: list[Agent] = [self.agent]
        self.runner = TurnRunner(
            stt=FallbackChain(Stage.STT, stt_providers, policy),
            agent=FallbackChain(Stage.AGENT, agents, policy),
            tts=self.voice,
            metrics=self.metrics,
        )
        self.guild = GuildPipeline(
            GUILD,
            runner=self.runner,
            speaker=self.playback,
            clock=FrameClock(workers=0),
            vad_pool=VadPool(batched=False),
            settings=GuildSettings(GUILD, addressing_mode=mode),
            default_wake_name="OpenClaw",
            opted_out=set(),
            context=GuildContext(
                humans_present=lambda: 2,
                display_name=lambda user_id: f"user{user_id}",
                touch=lambda: None,
                may_address=may_address,
            ),
            metrics=self.metrics,
        )
        self.outcomes = Outcomes()
        self.guild.outcomes = self.outcomes

    def user_messages(self) -> list[str]:
        return [m.content for m in self.guild.agent_session.history if m.role == "user"]

    def turns(self, status: str) -> float:
        value = self.metrics.registry.get_sample_value("pipeline_turns_total", {"status": status})
        return value or 0.0

    async def close(self) -> None:
        await self.guild.close()
        self.playback.close()


@pytest.fixture
async def room() -> AsyncIterator[Room]:
    opened = Room()
    yield opened
    await opened.close()


WITHIN_GRACE = END_OF_SPEECH + CONTINUATION_GRACE_SECONDS / 2
AFTER_GRACE = END_OF_SPEECH + CONTINUATION_GRACE_SECONDS + 0.1


async def test_speech_resumed_within_the_grace_is_answered_as_one_turn(room: Room) -> None:
    room.stt.hold = asyncio.Event()
    room.guild._on_utterance(said(ALICE, 1, ended_at=100.0))
    await room.stt.wait_for_requests(1)  # the first part is being transcribed
    room.guild._on_speech_start(ALICE, 100.0 + WITHIN_GRACE)
    room.guild._on_utterance(said(ALICE, 2, ended_at=102.0))
    await room.stt.wait_for_requests(2)
    room.stt.hold.set()

    assert await room.outcomes.wait_for(1) == [("alpha beta", "completed")]
    await room.playback.wait_for("Anything else?")
    assert room.stt.heard == ["alpha", "alpha beta"]  # the merged audio, in order
    assert room.agent.turns == ["alpha beta"]  # one agent call
    assert room.user_messages() == ["alpha beta"]
    assert room.playback.heard == ["You said alpha beta.", "Anything else?"]
    assert room.guild.continued == 1
    assert room.turns("completed") == 1
    assert room.turns("interrupted") == 0  # the withdrawn part is not a turn of its own
    assert room.playback.interrupts == 0


async def test_speech_resumed_after_the_grace_is_a_turn_of_its_own(room: Room) -> None:
    room.stt.hold = asyncio.Event()
    room.guild._on_utterance(said(ALICE, 1, ended_at=100.0))
    await room.stt.wait_for_requests(1)
    room.guild._on_speech_start(ALICE, 100.0 + AFTER_GRACE)
    room.guild._on_utterance(said(ALICE, 2, ended_at=103.0))
    room.stt.hold.set()

    # Neither merged nor interrupted (nothing was playing yet): answered in order.
    assert await room.outcomes.wait_for(2) == [("alpha", "completed"), ("beta", "completed")]
    assert room.agent.turns == ["alpha", "beta"]
    assert room.guild.continued == 0
    assert room.playback.interrupts == 0


async def test_a_queued_turn_continued_by_its_speaker_is_merged(room: Room) -> None:
    room.stt.hold = asyncio.Event()
    room.guild._on_utterance(said(BOB, 3, ended_at=99.0))
    await room.stt.wait_for_requests(1)  # Bob's turn is running
    room.guild._on_utterance(said(ALICE, 1, ended_at=100.0))  # queued behind it
    room.guild._on_speech_start(ALICE, 100.0 + WITHIN_GRACE)
    room.guild._on_utterance(said(ALICE, 2, ended_at=102.0))
    room.stt.hold.set()

    assert await room.outcomes.wait_for(2) == [("gamma", "completed"), ("alpha beta", "completed")]
    assert room.agent.turns == ["gamma", "alpha beta"]
    assert [request.display_name for request, _ in room.outcomes] == ["user2", "user1"]
    assert room.playback.interrupts == 0  # Bob's reply was not cut off


async def test_a_continued_turn_never_plays_the_speech_it_had_prepared(room: Room) -> None:
    room.playback.hold = asyncio.Event()  # still busy: the first reply cannot start yet
    room.agent.pause = asyncio.Event()
    room.guild._on_utterance(said(ALICE, 1, ended_at=100.0))
    await asyncio.wait_for(room.agent.called.wait(), 5)  # the agent is answering "alpha"
    room.guild._on_speech_start(ALICE, 100.0 + WITHIN_GRACE)
    room.guild._on_utterance(said(ALICE, 2, ended_at=102.0))
    room.agent.pause.set()
    room.playback.hold.set()

    assert await room.outcomes.wait_for(1) == [("alpha beta", "completed")]
    await room.playback.wait_for("Anything else?")
    assert room.playback.heard == ["You said alpha beta.", "Anything else?"]
    assert room.user_messages() == ["alpha beta"]


async def test_speech_once_the_reply_is_playing_interrupts_it(room: Room) -> None:
    room.agent.pause = asyncio.Event()
    room.guild._on_utterance(said(ALICE, 1, ended_at=100.0))
    await room.playback.wait_for("You said alpha.")  # the reply is being heard
    room.guild._on_speech_start(ALICE, 100.0 + WITHIN_GRACE)  # soon, but too late to merge
    room.guild._on_utterance(said(ALICE, 2, ended_at=102.0))
    room.agent.pause.set()

    assert await room.outcomes.wait_for(2) == [("alpha", "interrupted"), ("beta", "completed")]
    assert room.playback.interrupts == 1
    assert room.guild.continued == 0
    assert "Anything else?" in room.playback.heard  # the second answer played in full
    # The history keeps what was heard of the interrupted reply, marked as interrupted.
    assert [(m.role, m.content) for m in room.guild.agent_session.history] == [
        ("user", "alpha"),
        ("assistant", f"You said alpha. {INTERRUPTED_MARK}"),
        ("user", "beta"),
        ("assistant", "You said beta. Anything else?"),
    ]


async def test_speech_while_a_finished_turns_reply_still_plays_interrupts_it(room: Room) -> None:
    room.playback.slow = asyncio.Event()  # "You said alpha." takes a while to play
    room.guild._on_utterance(said(ALICE, 1, ended_at=100.0))
    await room.outcomes.wait_for(1)
    ((_, outcome),) = room.outcomes
    assert room.turns("completed") == 1  # the turn's work is done; its audio is not
    assert room.playback.playing
    room.guild._on_speech_start(BOB, 110.0)

    assert room.playback.interrupts == 1
    assert outcome.status == "interrupted"
    assert "Anything else?" not in room.playback.heard
    # The reply was remembered whole when its turn finished; the barge-in corrects that.
    assert [(m.role, m.content) for m in room.guild.agent_session.history] == [
        ("user", "alpha"),
        ("assistant", f"You said alpha. {INTERRUPTED_MARK}"),
    ]


async def test_another_speaker_does_not_interrupt_a_reply_not_yet_playing(room: Room) -> None:
    room.stt.hold = asyncio.Event()
    room.guild._on_utterance(said(ALICE, 1, ended_at=100.0))
    await room.stt.wait_for_requests(1)
    room.guild._on_speech_start(BOB, 100.0 + WITHIN_GRACE)
    room.guild._on_utterance(said(BOB, 3, ended_at=102.0))
    room.stt.hold.set()

    assert await room.outcomes.wait_for(2) == [("alpha", "completed"), ("gamma", "completed")]
    assert room.playback.interrupts == 0


async def test_an_agent_failing_mid_reply_is_apologised_for_and_counted(room: Room) -> None:
    """The unfinished sentence's speech is abandoned, so the apology is not stuck behind it."""
    room.voice.hold_replies = asyncio.Event()  # never set: "You said alpha." never arrives
    room.agent.fail_after_first_sentence = True
    room.guild._on_utterance(said(ALICE, 1, ended_at=100.0))

    assert await room.outcomes.wait_for(1) == [("alpha", "error")]
    apology = ErrorKind.UNAVAILABLE.user_message
    await room.playback.wait_for(apology)
    assert room.playback.heard == [apology]
    labels = {"error_code": "7003", "phase": "processing"}
    assert room.metrics.registry.get_sample_value("pipeline_error_total", labels) == 1
    assert room.metrics.registry.get_sample_value("pipeline_recovery_success_total") == 1


async def test_a_sentence_that_cannot_be_spoken_is_counted(room: Room) -> None:
    room.voice.fail_replies = True
    room.guild._on_utterance(said(ALICE, 1, ended_at=100.0))

    await room.outcomes.wait_for(1)
    await room.playback.wait_for("Anything else?")  # the next sentence is still spoken
    labels = {"error_code": "5003", "phase": "synthesizing"}
    assert room.metrics.registry.get_sample_value("pipeline_error_total", labels) == 1


async def test_a_recogniser_failure_is_counted_in_the_transcribing_phase(room: Room) -> None:
    room.guild._on_utterance(said(ALICE, 1, ended_at=100.0, seconds=0.0))  # no audio at all

    assert await room.outcomes.wait_for(1) == [(None, "error")]
    labels = {"error_code": "4008", "phase": "transcribing"}  # STT, empty input
    assert room.metrics.registry.get_sample_value("pipeline_error_total", labels) == 1


async def test_a_wake_name_after_a_pause_addresses_what_came_before() -> None:
    room = Room(mode="wake")
    try:
        room.guild._on_utterance(said(ALICE, 1, ended_at=100.0))
        assert await room.outcomes.wait_for(1) == [("alpha", "ignored")]
        room.guild._on_speech_start(ALICE, 100.0 + WITHIN_GRACE)
        room.guild._on_utterance(said(ALICE, 4, ended_at=102.0))
        assert await room.outcomes.wait_for(2) == [
            ("alpha", "ignored"),
            ("alpha openclaw", "completed"),
        ]
        (asked,) = room.agent.turns  # one agent call, with what was said before the name
        assert asked.startswith("alpha")
    finally:
        await room.close()


async def test_a_speaker_the_allowlist_excludes_is_not_answered_and_does_not_interrupt() -> None:
    room = Room(may_address=lambda user_id: user_id != BOB)
    try:
        room.playback.slow = asyncio.Event()  # Alice's answer keeps playing
        room.guild._on_utterance(said(BOB, 3, ended_at=100.0))
        room.guild._on_utterance(said(ALICE, 1, ended_at=101.0))
        assert await room.outcomes.wait_for(1) == [("alpha", "completed")]
        assert room.stt.heard == ["alpha"]  # Bob's speech never reached the recogniser
        assert room.playback.playing
        room.guild._on_speech_start(BOB, 110.0)
        assert room.playback.interrupts == 0
        room.guild._on_speech_start(ALICE, 111.0)  # someone allowed still can
        assert room.playback.interrupts == 1
    finally:
        await room.close()


def test_merging_keeps_the_voiced_bounds_of_both_parts() -> None:
    first, then = said(ALICE, 1, ended_at=10.0), said(ALICE, 2, ended_at=12.0)
    merged = merge_utterances(first, then)
    assert merged is not None
    assert read_words(merged.audio) == "alpha beta"
    assert (merged.first_voiced_at, merged.last_voiced_at) == (9.5, 12.0)
    assert merged.audio.duration_seconds == pytest.approx(1.0)
    other_rate = Utterance(ALICE, PcmAudio(bytes(960), 48_000), 11.0, 12.0)
    assert merge_utterances(first, other_rate) is None
    assert merge_utterances(first, said(BOB, 2, ended_at=12.0)) is None


async def test_a_drain_answers_speech_begun_before_it_and_ignores_speech_begun_after(
    room: Room,
) -> None:
    """A shutdown's drain while Alice is mid-question and her earlier question is being
    answered: both answers are given; Bob, who starts talking after the drain began, is
    not answered; the drain ends once Alice's answer is given, well before its bound."""
    room.stt.hold = asyncio.Event()
    now = time.monotonic()
    room.guild._on_utterance(said(ALICE, 1, ended_at=now - 5.0))
    await room.stt.wait_for_requests(1)  # her first question is being answered
    room.guild._on_speech_start(ALICE, now - 0.5)  # ... and she is asking another

    room.guild.begin_drain()  # what drain() does first
    drained = asyncio.create_task(room.guild.drain(30.0))
    room.guild._on_speech_start(BOB, now + 0.5)  # after the drain began
    room.stt.hold.set()
    room.guild._on_utterance(said(ALICE, 2, ended_at=now))
    room.guild._on_utterance(said(BOB, 3, ended_at=now + 1.0))
    async with asyncio.timeout(5):
        await drained

    assert await room.outcomes.wait_for(2) == [("alpha", "completed"), ("beta", "completed")]
    assert room.agent.turns == ["alpha", "beta"]  # nothing of Bob's


async def test_a_drain_does_not_wait_for_speech_begun_after_it(room: Room) -> None:
    now = time.monotonic()
    room.guild.begin_drain()
    drained = asyncio.create_task(room.guild.drain(30.0))
    room.guild._on_speech_start(BOB, now + 0.5)
    async with asyncio.timeout(5):
        await drained
    room.guild._on_utterance(said(BOB, 3, ended_at=now + 1.0))
    assert room.agent.turns == []
    assert len(room.outcomes) == 0
