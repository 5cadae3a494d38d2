"""One conversation turn: speech → text → agent → sentences → speech, pipelined.

The agent's token stream is cut into sentences as it arrives; each sentence's speech is
requested at once (prefetched, bounded) and queued for playback in order, so the first
sentence plays while the agent is still writing the rest. A failure in any stage becomes
a coded error and, when the turn can recover, a short spoken apology from the phrase
cache; a turn never ends in silence without a log line and a metric saying why.

A turn the same speaker continued (they paused, then went on before the reply was heard)
is abandoned with status ``continued``: its queued speech never plays, nothing is
remembered or counted, and the guild pipeline answers the merged utterance instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import structlog

from openclaw_voice.agent.base import Agent, AgentSession, AgentTurn, Message
from openclaw_voice.agent.registry import reply as agent_reply
from openclaw_voice.audio.packets import Utterance
from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.errors import ErrorKind, ProviderError, Stage, VoiceError
from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.resilience import FallbackChain
from openclaw_voice.stt.base import SpeechToText, Transcript, TranscriptionRequest
from openclaw_voice.stt.registry import transcribe
from openclaw_voice.tts.base import SpeechRequest, TextToSpeech
from openclaw_voice.tts.text import SentenceChunker

log = structlog.get_logger(__name__)

TurnStatus = Literal["completed", "ignored", "error", "interrupted", "continued"]
MAX_RECOVERIES = 3
# Ends a reply in the conversation history that a user interrupted (barge-in).
INTERRUPTED_MARK = "[interrupted by the user]"
PREFETCH_CHUNKS = 64


class Preloadable(Protocol):
    """A provider with a model to load before the first turn (the offline ones)."""

    async def load(self) -> None: ...


class AudioOut(Protocol):
    """Where a reply is spoken: Discord playback, or the demo's WAV writer."""

    def say(self, chunks: AsyncIterable[PcmAudio]) -> object: ...


@dataclass(frozen=True)
class TurnRequest:
    """A user's turn: an utterance from the voice channel or a typed question."""

    guild_id: int
    user_id: int
    display_name: str
    utterance: Utterance | None = None
    text: str | None = None
    # Words the recogniser should favour for this guild (its wake name, say).
    vocabulary: tuple[str, ...] = ()
    received_at: float = field(default_factory=time.monotonic)
    turn_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])


@dataclass
class TurnOutcome:
    status: TurnStatus
    transcript: str | None = None
    reply: str = ""
    error: VoiceError | None = None
    timings: dict[str, float] = field(default_factory=dict)
    first_audio_at: float | None = None
    # Sentences of the reply whose audio began playing, and the reply as remembered.
    spoken: list[str] = field(default_factory=list)
    remembered: Message | None = None

    @property
    def heard(self) -> bool:
        """True once the reply's first audio went to playback."""
        return self.first_audio_at is not None


def interrupted_reply(spoken: list[str]) -> str:
    """What the history keeps of a reply cut short: the sentences that began playing, marked."""
    heard = " ".join(sentence.strip() for sentence in spoken if sentence.strip())
    return f"{heard} {INTERRUPTED_MARK}" if heard else INTERRUPTED_MARK


class _SentenceAudio:
    """One sentence's speech, prefetched by a TTS task and drained by playback in order."""

    def __init__(self) -> None:
        self.chunks: asyncio.Queue[PcmAudio | BaseException | None] = asyncio.Queue(PREFETCH_CHUNKS)
        self.abandoned = False

    def abandon(self) -> None:
        """The sentence will not be completed: playback stops at its next chunk, or now."""
        self.abandoned = True
        with contextlib.suppress(asyncio.QueueFull):  # full: the reader sees `abandoned`
            self.chunks.put_nowait(None)


class TurnRunner:
    """Runs turns against the provider chains; shared by every session of a process."""

    def __init__(
        self,
        *,
        stt: FallbackChain[SpeechToText],
        agent: FallbackChain[Agent],
        tts: TextToSpeech,
        metrics: Metrics | None = None,
        language: str | None = "en",
        vocabulary: tuple[str, ...] = (),
        preload: tuple[Preloadable, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stt = stt
        self.agent = agent
        self.tts = tts
        self.metrics = metrics
        self.language = language
        self.vocabulary = vocabulary
        self.preload = preload
        self._clock = clock

    async def warm_up(self) -> None:
        """Load local models now, so the first user does not wait for them."""
        await asyncio.gather(*(provider.load() for provider in self.preload))

    async def aclose(self) -> None:
        """Close every provider's client (HTTP sessions, model executors)."""
        for chain in (self.stt, self.agent):
            for provider in chain.providers:
                await provider.aclose()
        await self.tts.aclose()

    # --- stages -----------------------------------------------------------------------

    async def transcribe(self, request: TurnRequest, utterance: Utterance) -> Transcript:
        started = self._clock()
        try:
            return await transcribe(
                self.stt,
                TranscriptionRequest(
                    utterance.audio,
                    language=self.language,
                    vocabulary=tuple(dict.fromkeys((*request.vocabulary, *self.vocabulary))),
                    guild_id=request.guild_id,
                ),
            )
        finally:
            self._phase("transcribing", self._clock() - started)

    def speech(self, text: str, guild_id: int | None = None) -> AsyncIterator[PcmAudio]:
        return self.tts.synthesize(SpeechRequest(text, guild_id=guild_id))

    async def respond(
        self,
        request: TurnRequest,
        text: str,
        session: AgentSession,
        out: AudioOut | None,
        outcome: TurnOutcome,
    ) -> None:
        """Stream the agent's answer to ``text``; speak it sentence by sentence on ``out``."""
        turn = AgentTurn(text=text, user_id=request.user_id, display_name=request.display_name)
        chunker = SentenceChunker()
        started = self._clock()
        prefetches: list[tuple[asyncio.Task[None], _SentenceAudio]] = []
        first_token: float | None = None
        try:
            async for delta in agent_reply(self.agent, session, turn):
                if first_token is None:
                    first_token = self._clock()
                    outcome.timings["agent_first_token"] = first_token - started
                outcome.reply += delta
                for sentence in chunker.feed(delta):
                    self._speak_sentence(sentence, request, out, outcome, prefetches)
            tail = chunker.flush()
            if tail:
                self._speak_sentence(tail, request, out, outcome, prefetches)
            self._phase("processing", self._clock() - started)
            if prefetches:
                await asyncio.gather(*(task for task, _ in prefetches))
        except BaseException:
            # Sentences still being synthesized will not be finished: end their playback
            # streams too, or the speaker would wait for them (and everything after) forever.
            for task, audio in prefetches:
                if not task.done():
                    task.cancel()
                    audio.abandon()
            raise

    def _speak_sentence(
        self,
        sentence: str,
        request: TurnRequest,
        out: AudioOut | None,
        outcome: TurnOutcome,
        prefetches: list[tuple[asyncio.Task[None], _SentenceAudio]],
    ) -> None:
        if out is None:
            return
        sentence_audio = _SentenceAudio()
        queue = sentence_audio.chunks
        first_sentence = not prefetches
        requested = self._clock()

        async def fill() -> None:
            try:
                async for chunk in self.speech(sentence, request.guild_id):
                    if first_sentence and "tts_first_byte" not in outcome.timings:
                        outcome.timings["tts_first_byte"] = self._clock() - requested
                        self._phase("synthesizing", outcome.timings["tts_first_byte"])
                    await queue.put(chunk)
            except (VoiceError, OSError, ValueError) as error:
                await queue.put(error)
                return
            await queue.put(None)

        task = asyncio.create_task(fill(), name=f"tts-{request.turn_id}")
        prefetches.append((task, sentence_audio))
        out.say(self._played(sentence_audio, outcome, sentence))

    async def _played(
        self, sentence: _SentenceAudio, outcome: TurnOutcome, text: str
    ) -> AsyncIterator[PcmAudio]:
        started = False
        while True:
            item = await sentence.chunks.get()
            if item is None or sentence.abandoned or outcome.status == "continued":
                return
            if isinstance(item, BaseException):
                code = item.code if isinstance(item, VoiceError) else int(Stage.TTS)
                log.warning("a reply sentence could not be spoken", error=str(item), code=code)
                if self.metrics is not None:
                    labels = {"error_code": str(code), "phase": "synthesizing"}
                    self.metrics.pipeline_error_total.labels(**labels).inc()
                return
            if outcome.first_audio_at is None:
                outcome.first_audio_at = self._clock()
            if not started:
                started = True
                outcome.spoken.append(text)
            yield item

    # --- the whole turn -------------------------------------------------------------------

    async def run(
        self,
        request: TurnRequest,
        session: AgentSession,
        out: AudioOut | None,
        *,
        accept: Callable[[str], str | None] = lambda text: text,
        outcome: TurnOutcome | None = None,
    ) -> TurnOutcome:
        """Transcribe (voice turns), decide whether it is for us, answer and speak.

        ``accept`` maps the transcript to the text for the agent, or None when the
        utterance was not addressed to the bot (the turn is then ignored). ``outcome``,
        when given, is filled in as the turn goes (the caller watches it, e.g. for when the
        reply starts playing).
        """
        if outcome is None:
            outcome = TurnOutcome("completed")
        phase = "transcribing"
        log_ctx = structlog.contextvars.bound_contextvars(
            guildId=str(request.guild_id), userId=str(request.user_id), traceId=request.turn_id
        )
        with log_ctx:
            try:
                text = request.text or ""
                if request.utterance is not None:
                    stt_started = self._clock()
                    transcript = await self.transcribe(request, request.utterance)
                    outcome.timings["stt"] = self._clock() - stt_started
                    outcome.transcript = transcript.text
                    self._usage_stt(request, transcript)
                    accepted = accept(transcript.text)
                    if accepted is None:
                        outcome.status = "ignored"
                        self._turn_done(request, outcome)
                        return outcome
                    text = accepted
                phase = "processing"
                await self.respond(request, text, session, out, outcome)
                if not outcome.reply.strip():
                    raise ProviderError(Stage.AGENT, ErrorKind.EMPTY_RESULT, "agent", "no answer")
            except asyncio.CancelledError:
                if outcome.status == "continued":
                    log.info("turn continued by its speaker; answering the merged utterance")
                else:
                    outcome.status = "interrupted"
                    self._remember(session, request, outcome)
                    self._turn_done(request, outcome)
                raise
            except VoiceError as error:
                outcome.status = "error"
                outcome.error = error
                await self._recover(request, error, out, phase)
            self._remember(session, request, outcome)
            self._turn_done(request, outcome)
        return outcome

    def _remember(self, session: AgentSession, request: TurnRequest, outcome: TurnOutcome) -> None:
        text = request.text if request.utterance is None else outcome.transcript
        if not text or outcome.status == "ignored":
            return
        session.remember(Message("user", text, name=request.display_name))
        if outcome.status == "interrupted":
            reply = interrupted_reply(outcome.spoken)
        elif outcome.reply.strip():
            reply = outcome.reply.strip()
        else:
            return
        outcome.remembered = Message("assistant", reply)
        session.remember(outcome.remembered)

    async def _recover(
        self, request: TurnRequest, error: VoiceError, out: AudioOut | None, phase: str
    ) -> None:
        """Say a short, cached apology for the error; count whether that worked."""
        if self.metrics is not None:
            self.metrics.pipeline_error_total.labels(error_code=str(error.code), phase=phase).inc()
            self.metrics.pipeline_recovery_attempt_total.inc()
        log.warning("turn failed", error=str(error), context={"code": error.code, "phase": phase})
        if out is None:
            return
        try:
            chunks = [chunk async for chunk in self.speech(error.user_message, request.guild_id)]
        except VoiceError as spoken:
            log.error("the apology could not be spoken either", error=str(spoken))
            if self.metrics is not None:
                self.metrics.pipeline_recovery_failure_total.inc()
            return
        out.say(replay(chunks))
        if self.metrics is not None:
            self.metrics.pipeline_recovery_success_total.inc()

    # --- accounting ---------------------------------------------------------------------

    def _phase(self, phase: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.pipeline_request_duration_seconds.labels(phase=phase).observe(seconds)

    def _usage_stt(self, request: TurnRequest, transcript: Transcript) -> None:
        if self.metrics is None:
            return
        provider = transcript.provider
        self.metrics.stt_audio_seconds_total.labels(provider=provider).inc(
            transcript.duration_seconds
        )
        if transcript.confidence is not None:
            self.metrics.stt_confidence_score.labels(provider=provider).observe(
                transcript.confidence
            )
        self.metrics.guild_usage_total.labels(
            guild_id=str(request.guild_id), provider=provider, kind="stt_audio_seconds"
        ).inc(transcript.duration_seconds)

    def _turn_done(self, request: TurnRequest, outcome: TurnOutcome) -> None:
        utterance = request.utterance
        if utterance is not None and outcome.first_audio_at is not None:
            outcome.timings["end_of_utterance"] = request.received_at - utterance.last_voiced_at
            outcome.timings["e2e"] = outcome.first_audio_at - utterance.last_voiced_at
        if self.metrics is not None:
            self.metrics.pipeline_turns_total.labels(status=outcome.status).inc()
            if "e2e" in outcome.timings:
                self.metrics.pipeline_time_to_first_audio_seconds.observe(outcome.timings["e2e"])
                self.metrics.pipeline_end_of_utterance_delay_seconds.observe(
                    outcome.timings["end_of_utterance"]
                )
        log.info(
            "turn finished",
            context={
                "status": outcome.status,
                "code": outcome.error.code if outcome.error else None,
                "timings_ms": {k: round(v * 1000) for k, v in outcome.timings.items()},
            },
        )


async def replay(chunks: list[PcmAudio]) -> AsyncIterator[PcmAudio]:
    """Chunks already in memory (a cached phrase) as a stream."""
    for chunk in chunks:
        yield chunk
