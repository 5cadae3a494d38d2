"""Local fake of ElevenLabs' streaming text-to-speech (``POST /v1/text-to-speech/{id}/stream``)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes.http import FakeHttpApi
from tests.fakes.tone import odd_chunks, tone_for

PCM_FORMATS = {"pcm_8000", "pcm_16000", "pcm_22050", "pcm_24000", "pcm_44100", "pcm_48000"}
MAX_TEXT = 5_000


def _unprocessable(message: str) -> web.Response:
    body = {"detail": [{"loc": ["body"], "msg": message, "type": "value_error"}]}
    return web.json_response(body, status=422)


class FakeElevenLabsTts(FakeHttpApi):
    """Checks ``xi-api-key``, the PCM ``output_format`` query and the JSON body; streams a tone.

    Audio comes in chunks of odd sizes, so a client that does not carry split samples over
    produces misaligned PCM. ``empty_audio`` makes the next responses 200 with no bytes.
    """

    def __init__(self, api_key: str = "eleven-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.texts: list[str] = []
        self.voices: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.empty_audio = False

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/text-to-speech/{voice_id}/stream", self.stream)

    def audio_for(self, text: str, output_format: str = "pcm_24000") -> bytes:
        return tone_for(text, int(output_format.removeprefix("pcm_")))

    def _problem(self, request: web.Request, body: Any) -> web.Response | None:
        """What a real server would refuse in this request, or None."""
        output_format = request.query.get("output_format", "mp3_44100_128")
        text = body.get("text") if isinstance(body, dict) else None
        settings = body.get("voice_settings") if isinstance(body, dict) else None
        bounds = (
            [settings.get(name) for name in ("stability", "similarity_boost")] if settings else []
        )
        message = None
        if output_format not in PCM_FORMATS:
            message = f"this fake streams PCM only, not {output_format}"
        elif not request.content_type.startswith("application/json") or body is None:
            message = "expected a JSON body"
        elif not isinstance(text, str) or not text.strip():
            message = "text is required"
        elif len(text) > MAX_TEXT:
            message = f"text is {len(text)} characters, the limit is {MAX_TEXT}"
        elif not isinstance(body.get("model_id"), str):
            message = "model_id must be a string"
        elif any(value is not None and not 0.0 <= value <= 1.0 for value in bounds):
            message = "voice_settings values must be within 0..1"
        return None if message is None else _unprocessable(message)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        if request.headers.get("xi-api-key") != self.api_key:
            detail = {"status": "invalid_api_key", "message": "Invalid API key"}
            return web.json_response({"detail": detail}, status=401)
        try:
            body = json.loads(recorded.body)
        except ValueError:
            body = None
        problem = self._problem(request, body)
        if problem is not None:
            return problem
        self.texts.append(body["text"])
        self.voices.append(request.match_info["voice_id"])
        self.bodies.append(body)
        failure = await self.before_response()
        if failure is not None:
            return failure
        output_format = request.query["output_format"]
        audio = b"" if self.empty_audio else self.audio_for(body["text"], output_format)
        return await self.stream_chunks(request, odd_chunks(audio), "application/octet-stream")
