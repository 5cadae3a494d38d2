"""Bot speech into Discord: a streaming, interruptible AudioSource and its per-connection player."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import discord
import structlog

from openclaw_voice.audio.encode import (
    FRAME_BYTES,
    SILENCE_FRAME,
    FrameEncoder,
    LevelSettings,
    earcon_frames,
)
from openclaw_voice.audio.pcm import PcmAudio
from openclaw_voice.ops.metrics import Metrics

log = structlog.get_logger(__name__)

PcmChunks = AsyncIterable[PcmAudio]


@dataclass(frozen=True, slots=True)
class PlaybackSettings:
    """Playback buffer size (20 ms frames), normalisation and the optional waiting earcon."""

    buffer_frames: int = 25
    normalize: bool = True
    level: LevelSettings = field(default_factory=LevelSettings)
    earcon: bool = False  # a soft "thinking" blip until the reply's first frame


class StreamingSource(discord.AudioSource):
    """Plays queued utterances (async PCM chunk streams) as 20 ms frames; never blocks read()."""

    def __init__(
        self,
        *,
        settings: PlaybackSettings | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings or PlaybackSettings()
        self._metrics = metrics
        self._loop = asyncio.get_running_loop()
        self._frames: deque[bytes] = deque()
        self._lock = threading.Lock()
        self._space = asyncio.Event()
        self._waiting = False
        self._utterances: asyncio.Queue[PcmChunks | None] = asyncio.Queue()
        self._feeder: asyncio.Task[None] | None = None
        self._feeding = False
        self._finished = False
        self._ended = False
        self._earcon = earcon_frames() if self.settings.earcon else []
        self._earcon_at = 0
        self.frames_played = 0

    # -- loop side -------------------------------------------------------------------------

    def enqueue(self, chunks: PcmChunks) -> None:
        """Queues one utterance; it plays after those before it, as its chunks arrive."""
        with self._lock:
            if self._ended:
                raise RuntimeError("source has ended")
            self._finished = False
        self._utterances.put_nowait(chunks)
        self._ensure_feeder()

    def finish(self) -> None:
        """No more utterances for now: the source ends once everything queued has played."""
        self._finished = True
        self._utterances.put_nowait(None)
        self._ensure_feeder()

    def _ensure_feeder(self) -> None:
        if self._feeder is None or self._feeder.done():
            self._feeder = self._loop.create_task(self._feed(), name="playback-feed")

    def interrupt(self) -> None:
        """Stops now: discards every queued frame and utterance; the next read() ends the source."""
        self._ended = True
        with self._lock:
            dropped = len(self._frames)
            self._frames.clear()
        if self._feeder is not None:
            self._feeder.cancel()
        while not self._utterances.empty():
            self._utterances.get_nowait()
        if self._metrics is not None and dropped:
            self._metrics.audio_frames_dropped_total.labels(reason="interrupted").inc(dropped)
        log.debug("playback interrupted", context={"frames_dropped": dropped})

    @property
    def queued_frames(self) -> int:
        """Frames encoded and waiting for the player."""
        return len(self._frames)

    @property
    def done(self) -> bool:
        """True once the source has ended (interrupted, or finished and drained)."""
        return self._ended

    async def wait_closed(self) -> None:
        """Waits until the feeder has finished (everything queued is framed) or was cancelled."""
        if self._feeder is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeder

    async def _feed(self) -> None:
        """Frames each queued utterance in order, waiting for room in the frame buffer."""
        while True:
            chunks = await self._utterances.get()
            if chunks is None:
                if self._finished:
                    return
                continue
            self._feeding = True
            encoder = FrameEncoder(normalize=self.settings.normalize, level=self.settings.level)
            try:
                async for chunk in chunks:
                    for frame in encoder.push(chunk):
                        await self._put(frame)
                for frame in encoder.flush():
                    await self._put(frame)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("playback stream failed; skipping the rest of the utterance")
            finally:
                self._feeding = False

    async def _put(self, frame: bytes) -> None:
        while len(self._frames) >= self.settings.buffer_frames:
            self._space.clear()
            self._waiting = True
            await self._space.wait()
        self._waiting = False
        if self._ended:
            return
        with self._lock:
            self._frames.append(frame)

    # -- player thread side ----------------------------------------------------------------

    def read(self) -> bytes:
        """One 20 ms frame; silence (or the earcon) while waiting; b"" once the source is over."""
        with self._lock:
            frame = self._frames.popleft() if self._frames else None
        if frame is not None:
            self._wake_feeder()
            self.frames_played += 1
            if self._metrics is not None:
                self._metrics.audio_frames_processed_total.labels(format="pcm").inc()
                self._metrics.audio_bytes_processed_total.labels(format="pcm").inc(FRAME_BYTES)
            return frame
        with self._lock:
            if not self._ended and self._finished and not self._feeding and self._feeder_done():
                self._ended = not self._frames
        if self._ended:
            return b""
        if self._earcon and self.frames_played == 0:  # only while waiting for the reply
            self._earcon_at = (self._earcon_at + 1) % len(self._earcon)
            return self._earcon[self._earcon_at - 1]
        return SILENCE_FRAME

    def _feeder_done(self) -> bool:
        return self._feeder is not None and self._feeder.done()

    def _wake_feeder(self) -> None:
        if self._waiting:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._space.set)

    def is_opus(self) -> bool:
        """PCM out: discord.py's player encodes, in its own thread (ctypes releases the GIL)."""
        return False

    def cleanup(self) -> None:
        """Called by discord.py when playback stops; drops whatever is left."""
        if not self._ended:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self.interrupt)


class VoiceOutput(Protocol):
    """The part of discord.VoiceClient the player uses."""

    def play(
        self, source: discord.AudioSource, *, after: Callable[[Exception | None], Any] | None = ...
    ) -> None: ...

    def stop(self) -> None: ...


class VoicePlayback:
    """Speaks replies on one voice connection: utterances queue up; interrupt() cuts them all."""

    def __init__(
        self,
        voice: VoiceOutput,
        *,
        settings: PlaybackSettings | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._voice = voice
        self.settings = settings or PlaybackSettings()
        self._metrics = metrics
        self._source: StreamingSource | None = None

    @property
    def playing(self) -> bool:
        """True while a source is playing or has audio queued."""
        return self._source is not None and not self._source.done

    def say(self, chunks: PcmChunks) -> StreamingSource:
        """Queues one utterance; starts playing (with the first chunk) if nothing is playing."""
        source = self._source
        if source is None or source.done:
            source = StreamingSource(settings=self.settings, metrics=self._metrics)
            self._source = source
            self._voice.play(source, after=self._after)
        source.enqueue(chunks)
        return source

    def finish(self) -> None:
        """Lets the current source end once its queue has played."""
        if self._source is not None:
            self._source.finish()

    def interrupt(self) -> None:
        """Stops the bot's audio within one frame and discards everything queued."""
        source, self._source = self._source, None
        if source is not None:
            source.interrupt()
            self._voice.stop()

    def _after(self, error: Exception | None) -> None:
        if error is not None:
            log.warning("playback ended with an error", error=str(error))
