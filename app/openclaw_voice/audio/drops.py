"""Counts dropped audio frames per reason: local tallies, Prometheus, one debug log per burst."""

from __future__ import annotations

from collections import Counter

import structlog

from openclaw_voice.ops.metrics import Metrics

log = structlog.get_logger(__name__)


class DropCounter:
    """Tallies drops by reason; logs the first drop of a burst, and the burst's size at its end."""

    def __init__(self, *, metrics: Metrics | None = None, user_id: int | None = None) -> None:
        self.counts: Counter[str] = Counter()
        self._metrics = metrics
        self._user_id = user_id
        self._burst: Counter[str] = Counter()

    def drop(self, reason: str, frames: int = 1) -> None:
        """Counts `frames` dropped for `reason`."""
        self.counts[reason] += frames
        if self._metrics is not None:
            self._metrics.audio_frames_dropped_total.labels(reason=reason).inc(frames)
        if not self._burst[reason]:
            log.debug("audio frames dropped", reason=reason, userId=self._user_id)
        self._burst[reason] += frames

    def end_burst(self) -> None:
        """Closes the current burst (called when good audio flows again)."""
        if self._burst:
            log.debug("audio drop burst ended", userId=self._user_id, context=dict(self._burst))
            self._burst.clear()
