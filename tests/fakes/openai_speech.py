"""Local fake of OpenAI's speech endpoint (``POST /v1/audio/speech``), streaming 24 kHz PCM."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes.http import FakeHttpApi
from tests.fakes.tone import odd_chunks, tone_for

SAMPLE_RATE = 24_000
MAX_INPUT = 4_096
FORMATS = {"mp3", "opus", "aac", "flac", "wav", "pcm"}


class FakeOpenAISpeech(FakeHttpApi):
    """Checks the bearer key, ``model``, ``voice``, ``input`` and ``response_format=pcm``."""

    def __init__(self, api_key: str = "openai-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.texts: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.empty_audio = False

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/audio/speech", self.speech)

    def audio_for(self, text: str) -> bytes:
        return tone_for(text, SAMPLE_RATE)

    def _problem(self, request: web.Request, body: Any) -> web.Response | None:
        """What the real API would refuse in this request, or None."""
        fields = body if isinstance(body, dict) else {}
        text, voice = fields.get("input"), fields.get("voice")
        response_format = fields.get("response_format", "mp3")
        missing = [name for name in ("model", "input", "voice") if name not in fields]
        message = None
        if not request.content_type.startswith("application/json") or body is None:
            message = "We could not parse the JSON body of your request."
        elif missing:
            message = f"Missing required parameter: '{missing[0]}'."
        elif not isinstance(text, str) or not text:
            message = "'input' must be a non-empty string."
        elif len(text) > MAX_INPUT:
            message = f"'input' is longer than {MAX_INPUT} characters."
        elif not isinstance(voice, str) and not (isinstance(voice, dict) and "id" in voice):
            message = "Invalid value for 'voice'."
        elif response_format not in FORMATS:
            message = f"Invalid value for 'response_format': {response_format}."
        elif response_format != "pcm":
            message = "This fake only produces response_format 'pcm'."
        return None if message is None else self.error(400, message)

    async def speech(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self.error(401, "Incorrect API key provided.")
        try:
            body = json.loads(recorded.body)
        except ValueError:
            body = None
        problem = self._problem(request, body)
        if problem is not None:
            return problem
        self.texts.append(body["input"])
        self.bodies.append(body)
        failure = await self.before_response()
        if failure is not None:
            return failure
        audio = b"" if self.empty_audio else self.audio_for(body["input"])
        return await self.stream_chunks(request, odd_chunks(audio), "audio/pcm")
