"""One guild's live conversation: per-user audio in, turns in arrival order, replies out.

Each speaker has their own audio stream (jitter buffer, decoder, VAD) on the process's
shared frame clock, so several people can talk at once and every utterance keeps its
speaker. Utterances become turns, answered one at a time in arrival order from a
bounded queue. A user who starts speaking while the bot's reply is playing interrupts it
(barge-in): playback stops within a frame and the in-flight agent and speech work is
cancelled. Speech before the reply is heard does not interrupt anyone; it queues.

Continuation: a speaker who paused long enough to end an utterance (the end-of-speech
silence) but goes on within a short grace after it, before their reply has started
playing, has not finished their turn. Their pending turn is withdrawn (cancelled if it was
already running: transcription and agent work is speculative until the reply plays) and
the two utterances are answered as one: one transcript, one agent call, one reply.
Opted-out users' audio is dropped before it is even decoded.

Draining (shutdown, or a slot giving up the active role): no turn for speech that begins
after the drain began, but what was being said, queued or answered then is still answered,
within the drain's bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from openclaw_voice.agent.base import AgentSession, Message
from openclaw_voice.audio.clock import FrameClock
from openclaw_voice.audio.packets import OpusPacket, Utterance
from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.audio.user_stream import StreamSettings, UserAudioStream
from openclaw_voice.audio.vad import VadPool, VadSettings
from openclaw_voice.errors import VoiceError
from openclaw_voice.ops.metrics import Metrics
from openclaw_voice.pipeline.addressing import decide
from openclaw_voice.pipeline.budget import GuildBudget
from openclaw_voice.pipeline.turn import (
    AudioOut,
    TurnOutcome,
    TurnRequest,
    TurnRunner,
    interrupted_reply,
    replay,
)
from openclaw_voice.store.state import GuildSettings

log = structlog.get_logger(__name__)

BUDGET_NOTICE = "Today's voice budget for this server is used up, so I'll answer in text."

RECENT_TURNS = 20  # kept for /voice status and tests; bounded so long sessions stay small
# Speech resumed within this long after an utterance's end of speech continues it.
CONTINUATION_GRACE_SECONDS = 1.0
# Continuations stop merging once the merged utterance would be longer than this.
MAX_MERGED_SECONDS = 60.0


def merge_utterances(first: Utterance, then: Utterance) -> Utterance | None:
    """One utterance from two of the same speaker (None when their formats differ)."""
    a, b = first.audio, then.audio
    if (a.sample_rate, a.channels) != (b.sample_rate, b.channels) or first.user_id != then.user_id:
        return None
    audio = PcmAudio(a.data + b.data, a.sample_rate, a.channels)
    return Utterance(first.user_id, audio, first.first_voiced_at, then.last_voiced_at)


class Speaker(AudioOut, Protocol):
    """Playback that can also be cut off (Discord's VoicePlayback, or a test double)."""

    @property
    def playing(self) -> bool:
        """True while audio is playing or queued."""
        ...

    def interrupt(self) -> None: ...

    def finish(self) -> None: ...


@dataclass(frozen=True)
class GuildContext:
    """What the pipeline asks of the surrounding Discord session."""

    humans_present: Callable[[], int]
    display_name: Callable[[int], str]
    touch: Callable[[], None]
    post_transcript: Callable[[str], Awaitable[None]] | None = None
    # Where replies go when the guild's voice budget is used up (its text channel).
    post_reply: Callable[[str], Awaitable[None]] | None = None
    # Whether the guild's role allowlist lets this user talk to the bot (everyone by default).
    may_address: Callable[[int], bool] = lambda user_id: True


class GuildPipeline:
    """Implements the receive layer's PacketSink for one guild."""

    def __init__(
        self,
        guild_id: int,
        *,
        runner: TurnRunner,
        speaker: Speaker,
        clock: FrameClock,
        vad_pool: VadPool,
        settings: GuildSettings,
        default_wake_name: str,
        opted_out: set[int],
        context: GuildContext,
        metrics: Metrics | None = None,
        queue_size: int = 8,
        budget: GuildBudget | None = None,
        continuation_grace: float = CONTINUATION_GRACE_SECONDS,
    ) -> None:
        self.guild_id = guild_id
        self.continuation_grace = continuation_grace
        self.budget = budget
        self._budget_notice_day: dt.date | None = None
        self.runner = runner
        self.speaker = speaker
        self.settings = settings
        self.default_wake_name = default_wake_name
        self.opted_out = opted_out
        self.context = context
        self._clock = clock
        self._vad_pool = vad_pool
        self._metrics = metrics
        self.agent_session = AgentSession(
            session_key=f"discord-voice:{guild_id}", guild_id=guild_id
        )
        self.streams: dict[int, UserAudioStream] = {}
        self.turns: asyncio.Queue[TurnRequest] = asyncio.Queue(queue_size)
        self.outcomes: deque[tuple[TurnRequest, TurnOutcome]] = deque(maxlen=RECENT_TURNS)
        self.last_outcome: TurnOutcome | None = None
        self._current: asyncio.Task[TurnOutcome] | None = None
        self._current_request: TurnRequest | None = None
        self._current_outcome: TurnOutcome | None = None
        # Per speaker: their latest voice turn not yet heard (queued, running, or ignored),
        # which speech resumed within the grace continues; and a withdrawn turn waiting
        # for the rest of the utterance to be merged with it.
        self._open: dict[int, TurnRequest] = {}
        self._held: dict[int, TurnRequest] = {}
        self._queued: set[str] = set()  # turn ids waiting in `turns`
        self._withdrawn: set[str] = set()  # queued turn ids continued before they ran
        self.continued = 0  # turns merged into their continuation
        self.accepting = True
        # Draining (shutdown, slot flip): since when; speech that began earlier is still
        # answered. Addressable speakers mid-utterance, and since when they speak.
        self._draining_since: float | None = None
        self._speaking: dict[int, float] = {}
        self._busy = False  # the worker holds a turn
        self._settled = asyncio.Event()  # an utterance ended or a turn finished
        self._worker = asyncio.create_task(self._work(), name=f"turns-{guild_id}")

    @property
    def wake_name(self) -> str:
        return self.settings.wake_name or self.default_wake_name

    # --- audio in (PacketSink) -----------------------------------------------------------

    def on_packet(self, user_id: int, packet: OpusPacket) -> None:
        if user_id in self.opted_out:
            if self._metrics is not None:
                self._metrics.audio_frames_dropped_total.labels(reason="opted_out").inc()
            return
        stream = self.streams.get(user_id)
        if stream is None:
            vad = VadSettings(min_silence=self.settings.end_of_speech_ms / 1000)
            stream = UserAudioStream(
                user_id,
                on_utterance=self._on_utterance,
                on_speech_start=self._on_speech_start,
                settings=StreamSettings(vad=vad),
                vad_pool=self._vad_pool,
                metrics=self._metrics,
            )
            self.streams[user_id] = stream
            self._clock.add(stream)
        stream.push(packet)

    def on_user_left(self, user_id: int) -> None:
        stream = self.streams.pop(user_id, None)
        if stream is not None:
            self._clock.remove(stream)
            stream.close()

    def set_opted_out(self, user_id: int, opted_out: bool) -> None:
        if opted_out:
            self.opted_out.add(user_id)
            self._held.pop(user_id, None)
            self.on_user_left(user_id)  # forget whatever of theirs is buffered
        else:
            self.opted_out.discard(user_id)

    def _on_speech_start(self, user_id: int, at: float) -> None:
        if user_id in self.opted_out or not self.context.may_address(user_id):
            return  # neither a continuation nor a barge-in
        self._speaking[user_id] = at
        self._continue(user_id, at)
        replying = self._audible_reply()
        if replying is not None:
            log.info("barge-in", guildId=str(self.guild_id), userId=str(user_id))
            self.interrupt()
            replying.status = "interrupted"  # also when its turn had finished but not its audio
            if replying.remembered is not None:  # finished: correct what the history says
                cut = Message("assistant", interrupted_reply(replying.spoken))
                self.agent_session.replace(replying.remembered, cut)
                replying.remembered = cut

    def _audible_reply(self) -> TurnOutcome | None:
        """The reply being heard right now, if any.

        The turn in progress once its first audio has played; with no turn in progress,
        the last one while its audio is still playing out.
        """
        current = self._current_outcome
        if current is not None:
            return current if current.heard else None
        last = self.last_outcome
        if last is not None and last.heard and self.speaker.playing:
            return last
        return None

    def _continue(self, user_id: int, at: float) -> bool:
        """Withdraw the speaker's unheard turn if speech at ``at`` continues it."""
        request = self._open.get(user_id)
        utterance = request.utterance if request is not None else None
        if request is None or utterance is None:
            return False
        paused = at - utterance.last_voiced_at
        if paused > self.settings.end_of_speech_ms / 1000 + self.continuation_grace:
            return False
        if utterance.audio.duration_seconds >= MAX_MERGED_SECONDS:
            return False
        running = self._current_request is request
        if running:
            task, outcome = self._current, self._current_outcome
            if task is None or outcome is None or task.done() or outcome.heard:
                return False  # too late: answered, or the reply is playing (a barge-in)
            outcome.status = "continued"  # its queued speech will not play
            task.cancel()
        elif request.turn_id in self._queued:
            self._withdrawn.add(request.turn_id)
        # else: it was ignored (not addressed); the merged utterance gets another look.
        del self._open[user_id]
        self._held[user_id] = request
        log.info(
            "speaker continued; merging with what follows",
            guildId=str(self.guild_id),
            userId=str(user_id),
            context={"paused_ms": round(paused * 1000), "was_running": running},
        )
        return True

    def _on_utterance(self, utterance: Utterance) -> None:
        self._speaking.pop(utterance.user_id, None)
        self._settled.set()
        if not self.accepting and not self._begun_before_drain(utterance):
            return  # leaving, or draining: no turns for speech begun since
        if not self.context.may_address(utterance.user_id):
            log.info(
                "utterance not answered: the guild's role allowlist excludes its speaker",
                guildId=str(self.guild_id),
                userId=str(utterance.user_id),
            )
            return
        self.context.touch()
        held = self._held.pop(utterance.user_id, None)
        if held is not None and held.utterance is not None:
            merged = merge_utterances(held.utterance, utterance)
            if merged is not None:
                utterance = merged
                self.continued += 1
        request = TurnRequest(
            guild_id=self.guild_id,
            user_id=utterance.user_id,
            display_name=self.context.display_name(utterance.user_id),
            utterance=utterance,
            vocabulary=(self.wake_name,),
        )
        try:
            self.turns.put_nowait(request)
            self._queued.add(request.turn_id)
        except asyncio.QueueFull:
            log.warning("turn queue full; utterance dropped", userId=str(utterance.user_id))
            if self._metrics is not None:
                self._metrics.pipeline_error_total.labels(
                    error_code="6001", phase="receiving"
                ).inc()
            return
        self._open[utterance.user_id] = request

    # --- turns --------------------------------------------------------------------------

    def _accept(self, text: str) -> str | None:
        decision = decide(
            text,
            mode=self.settings.addressing_mode,
            wake_name=self.wake_name,
            humans_present=self.context.humans_present(),
        )
        return decision.text if decision.addressed and decision.text else None

    async def _work(self) -> None:
        while True:
            request = await self.turns.get()
            self._busy = True
            try:
                await self.run_turn(request)
            finally:
                self._busy = False
                self._settled.set()

    async def run_turn(self, request: TurnRequest, *, speak: bool = True) -> TurnOutcome:
        """Answer one turn (voice or typed); an interruption cancels it cleanly."""
        over_budget = await self.budget.exhausted() if self.budget is not None else []
        if over_budget:
            speak = False
            await self._budget_notice()
        # Queued until the task exists (no await from here on): until then, a continuation
        # withdraws the turn instead of cancelling it.
        self._queued.discard(request.turn_id)
        if request.turn_id in self._withdrawn:
            self._withdrawn.discard(request.turn_id)
            return TurnOutcome("continued")  # answered together with its continuation
        outcome = TurnOutcome("completed")
        task = asyncio.create_task(
            self.runner.run(
                request,
                self.agent_session,
                self.speaker if speak else None,
                accept=self._accept if request.utterance is not None else (lambda text: text),
                outcome=outcome,
            )
        )
        self._current, self._current_request, self._current_outcome = task, request, outcome
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            this = asyncio.current_task()
            if not task.cancelled() or (this is not None and this.cancelling()):
                raise  # we ourselves are being cancelled (shutdown)
            if outcome.status != "continued":
                outcome.status = "interrupted"
        finally:
            self._current = self._current_request = self._current_outcome = None
            self._settled.set()
        if outcome.status == "continued":
            return outcome  # answered together with its continuation
        if self._open.get(request.user_id) is request and outcome.status != "ignored":
            del self._open[request.user_id]  # heard (or failed): the next speech is a new turn
        if outcome.status != "interrupted":
            self.speaker.finish()  # stop sending silence once the reply has played
        self.last_outcome = outcome
        self.outcomes.append((request, outcome))
        if self.budget is not None:
            await self.budget.record(request, outcome, spoken=speak)
        if over_budget and request.utterance is not None and outcome.reply.strip():
            await self._post(
                self.context.post_reply,
                f"**{request.display_name}**: "
                f"{outcome.transcript}\n**{self.wake_name}**: {outcome.reply.strip()}",
            )
        if outcome.status in ("completed", "error") and outcome.transcript is not None:
            self.context.touch()
            await self._mirror(request, outcome)
        return outcome

    async def _budget_notice(self) -> None:
        """Say once a day that the voice budget is used up and replies come as text."""
        today = dt.datetime.now(dt.UTC).date()
        if self._budget_notice_day == today:
            return
        self._budget_notice_day = today
        try:
            chunks = [chunk async for chunk in self.runner.speech(BUDGET_NOTICE, self.guild_id)]
        except VoiceError as error:
            log.warning("budget notice not spoken", error=str(error))
            return
        self.speaker.say(replay(chunks))
        self.speaker.finish()

    async def _post(self, post: Callable[[str], Awaitable[None]] | None, text: str) -> None:
        if post is None:
            return
        try:
            await post(text[:2000])
        except Exception as error:  # a text post must never break the conversation
            log.warning("could not post to the text channel", error=str(error))

    def interrupt(self) -> None:
        """Stop speaking now and drop the reply in progress."""
        self.speaker.interrupt()
        if self._current is not None:
            self._current.cancel()

    async def _mirror(self, request: TurnRequest, outcome: TurnOutcome) -> None:
        if self.settings.transcript_channel_id is None:
            return
        text = f"**{request.display_name}**: {outcome.transcript}"
        if outcome.reply.strip():
            text += f"\n**{self.wake_name}**: {outcome.reply.strip()}"
        await self._post(self.context.post_transcript, text)

    def begin_drain(self) -> None:
        """Take no turns for speech that begins from now on (see :meth:`drain`)."""
        self.accepting = False
        if self._draining_since is None:
            self._draining_since = self._clock.now()

    async def drain(self, within: float) -> None:
        """Take no turns for speech that begins from now on; answer what is being said,
        queued or answered now, for at most ``within`` s."""
        self.begin_drain()
        if within <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while self._unfinished():
                    self._settled.clear()
                    await self._settled.wait()

    def _begun_before_drain(self, utterance: Utterance) -> bool:
        since = self._draining_since
        return since is not None and utterance.first_voiced_at < since

    def _unfinished(self) -> bool:
        """Draining: speech begun before the drain is still going on, or a turn waits or runs."""
        since = self._draining_since
        speaking = since is not None and any(at < since for at in self._speaking.values())
        return speaking or self._busy or self._current is not None or not self.turns.empty()

    async def close(self) -> None:
        self.interrupt()
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        for user_id in list(self.streams):
            self.on_user_left(user_id)
