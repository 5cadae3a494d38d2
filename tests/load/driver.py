"""Conversations on the fake Discord: each guild's simulated speakers take turns asking.

Per guild, one task: a speaker (round robin) says a question in real time through the
fake's pacer, then the driver waits for the bot's answer, heard the way a member's client
would hear it: the bot's RTP on the fake's UDP socket, DAVE- and Opus-decoded. The turn
is answered when a frame with sound arrives (an answer or a spoken apology) and the bot
reports the turn's outcome; it is over when the bot's audio has been quiet for
``QUIET`` seconds. Then the next speaker thinks for a moment and asks.

Per turn it records: when the user stopped speaking (the send time of the clip's last
voiced frame), when the answer was first heard, the bot's own report of the turn, and the
bot's outgoing frames: lost (RTP sequence gaps) and late (behind a steady 20 ms
schedule anchored at the reply's earliest frame by more than ``LATE_SECONDS``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from tests.fakes.discord import Capture, CapturedFrame, FakeDiscord, SimulatedUser
from tests.load.profile import LoadProfile
from tests.load.speech import Clip

QUIET = 0.4  # seconds without a frame from the bot: its reply is over
LATE_SECONDS = 0.04  # an outgoing frame this far behind its schedule is late
HEARD_RMS = 10 ** (-50 / 20)  # a decoded frame louder than -50 dBFS carries sound
FRAME = 0.02


@dataclass
class TurnResult:
    guild_id: int
    speaker: int
    question: str
    asked_at: float
    stopped_at: float  # monotonic send time of the question's last voiced frame
    heard_at: float | None = None
    bot: dict[str, Any] | None = None  # the bot's "turn" event
    stale_events: int = 0
    frames: int = 0
    lost: int = 0
    late: int = 0
    max_lateness: float = 0.0

    @property
    def answered(self) -> bool:
        return self.heard_at is not None and self.bot is not None

    @property
    def heard_e2e(self) -> float | None:
        return None if self.heard_at is None else self.heard_at - self.stopped_at

    def as_json(self, origin: float = 0.0) -> dict[str, Any]:
        """The turn's figures; ``t``: when it was asked, seconds after ``origin``."""
        bot = self.bot or {}
        floor = bot.get("provider_floor")
        heard_overhead = None
        if self.heard_e2e is not None and bot.get("overhead") is not None and floor is not None:
            heard_overhead = self.heard_e2e - bot["end_of_speech"] - floor
        last_voiced_at = bot.get("last_voiced_at")
        return {
            "guild_id": self.guild_id,
            "speaker": self.speaker,
            "asked_at": self.asked_at,
            "t": self.asked_at - origin,
            "stopped_at": self.stopped_at,
            "heard_at": self.heard_at,
            "answered": self.answered,
            "status": bot.get("status", "unanswered"),
            "code": bot.get("code"),
            "injected": bot.get("injected", []),
            "e2e": bot.get("timings", {}).get("e2e"),
            "endpointing": bot.get("timings", {}).get("end_of_utterance"),
            "provider_floor": floor,
            "overhead": bot.get("overhead"),
            "heard_e2e": self.heard_e2e,
            "heard_overhead": heard_overhead,
            "vad_end_skew": (
                last_voiced_at - self.stopped_at if last_voiced_at is not None else None
            ),
            "stale_events": self.stale_events,
            "frames": self.frames,
            "lost": self.lost,
            "late": self.late,
            "max_lateness": self.max_lateness,
        }


def frame_rms(frame: CapturedFrame) -> float:
    samples = np.frombuffer(frame.pcm, dtype=np.int16).astype(np.float32) / 32768
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def schedule(frames: list[CapturedFrame]) -> tuple[int, list[float]]:
    """Lost frames (sequence gaps) and each frame's lateness behind a 20 ms schedule.

    The schedule is anchored at the earliest frame (relative to its sequence number) up to
    the reply's last frame with sound: discord.py sends five silence frames at once when
    playback stops, which are not paced and would make every other frame look late.
    """
    if not frames:
        return 0, []
    first = frames[0].sequence
    offsets = [((f.sequence - first + 0x8000) & 0xFFFF) - 0x8000 for f in frames]
    base = min(offsets)
    ordered = sorted(zip((o - base for o in offsets), frames, strict=True), key=lambda p: p[0])
    lost = ordered[-1][0] + 1 - len({o for o, _ in ordered})
    sounding = [index for index, (_, f) in enumerate(ordered) if frame_rms(f) > HEARD_RMS]
    paced = ordered[: sounding[-1] + 1] if sounding else ordered
    anchor = min(f.arrival - o * FRAME for o, f in paced)
    return lost, [f.arrival - (anchor + o * FRAME) for o, f in paced]


class GuildConversation:
    """One guild: its speakers, the bot's turn events for it, and the turns so far."""

    def __init__(
        self,
        fake: FakeDiscord,
        guild_id: int,
        speakers: list[SimulatedUser],
        clips: list[Clip],
        *,
        profile: LoadProfile,
        index: int,
    ) -> None:
        self.fake = fake
        self.guild_id = guild_id
        self.speakers = speakers
        self.clips = clips
        self.profile = profile
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.results: list[TurnResult] = []
        self.rng = random.Random(f"driver:{profile.seed}:{index}")  # pacing only
        self.send_lateness: list[float] = []
        self.capture_failures: Counter[str] = Counter()
        self.extra_reports = 0  # turn reports left over: a question answered twice
        # Held while a question is asked and answered: a disruption that must come between
        # turns takes it (tests/load/events.py).
        self.turn_lock = asyncio.Lock()
        self.reply_heard = asyncio.Event()  # the current question's answer is audible
        self.asking = asyncio.Event()  # a question is being spoken
        self.stop_asking = False  # finish the current turn, then ask nothing more

    async def run(self, deadline: float | None) -> None:
        """Ask ``profile.turns`` questions, or keep asking until ``deadline`` (monotonic)."""
        await asyncio.sleep(self.rng.uniform(0, self.profile.stagger))  # pacing, not sync
        turn = 0
        while True:
            if self.profile.turns is not None and turn >= self.profile.turns:
                return
            if deadline is not None and time.monotonic() >= deadline:
                return
            async with self.turn_lock:
                if self.stop_asking:
                    return
                await self.ask(self.speakers[turn % len(self.speakers)], turn)
            turn += 1
            await asyncio.sleep(self.rng.uniform(*self.profile.think))  # the user thinks

    async def ask(self, sim: SimulatedUser, turn: int) -> None:
        connection = self.fake.voice.connections.get(self.guild_id)
        if connection is None:
            raise RuntimeError(f"guild {self.guild_id} has no bot voice connection")
        capture = connection.capture
        self._keep_capture_stats(capture.stats.__dict__)
        capture.clear()
        clip = self.clips[self.rng.randrange(len(self.clips))]
        sim.stats.lateness.clear()
        self.reply_heard.clear()
        asked_at = time.monotonic()
        self.asking.set()
        try:
            stats = await sim.speak_opus(clip.frames, realtime=True)
        finally:
            self.asking.clear()
        lateness = stats.lateness
        self.send_lateness.extend(lateness)
        stopped_at = stats.started_at + clip.last_voiced * FRAME
        if clip.last_voiced < len(lateness):
            stopped_at += lateness[clip.last_voiced]
        result = TurnResult(
            self.guild_id, turn % len(self.speakers), clip.text, asked_at, stopped_at
        )
        self.results.append(result)
        deadline = time.monotonic() + self.profile.reply_timeout
        await self._wait_for_outcome(result, deadline)
        await self._wait_until_heard(result, capture, deadline)
        if result.heard_at is not None or result.bot is not None:
            await self._wait_until_quiet(capture, deadline + 30)
        frames = list(capture.frames)
        result.frames = len(frames)
        result.lost, lateness_out = schedule(frames)
        result.max_lateness = max(lateness_out, default=0.0)
        result.late = sum(1 for late in lateness_out if late > LATE_SECONDS)

    def _keep_capture_stats(self, stats: dict[str, int]) -> None:
        for name in ("transport_failures", "dave_failures", "decode_failures"):
            self.capture_failures[name] += stats.get(name, 0)

    def finish(self) -> None:
        """Count the last turn's capture failures and left-over reports; free its frames."""
        while not self.events.empty():
            if self.events.get_nowait()["status"] != "continued":
                self.extra_reports += 1
        connection = self.fake.voice.connections.get(self.guild_id)
        if connection is not None:
            self._keep_capture_stats(connection.capture.stats.__dict__)
            connection.capture.clear()

    async def _wait_for_outcome(self, result: TurnResult, deadline: float) -> None:
        """The bot's report of the turn for this question (earlier turns' reports skipped)."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                event = await asyncio.wait_for(self.events.get(), remaining)
            except TimeoutError:
                return
            last_voiced = event.get("last_voiced_at")
            if last_voiced is None or last_voiced < result.asked_at:
                result.stale_events += 1  # a report about an earlier utterance
                continue
            if event["status"] == "continued":
                continue  # merged into the report that follows
            result.bot = event
            return

    async def _wait_until_heard(
        self, result: TurnResult, capture: Capture, deadline: float
    ) -> None:
        """Scan the bot's frames for the first with sound (an answer or an apology)."""
        frames = capture.frames
        index = 0
        while True:
            while index < len(frames):
                frame = frames[index]
                index += 1
                if frame.arrival >= result.asked_at and frame_rms(frame) > HEARD_RMS:
                    result.heard_at = frame.arrival
                    self.reply_heard.set()
                    return
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (result.bot is not None and result.bot["status"] == "ignored"):
                return
            try:
                await capture.wait_for_frames(len(frames) + 1, within=remaining)
            except TimeoutError:
                return

    async def _wait_until_quiet(self, capture: Capture, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                await capture.wait_for_frames(len(capture.frames) + 1, within=QUIET)
            except TimeoutError:
                return
