"""Local fake of Google Cloud Text-to-Speech REST (``POST /v1/text:synthesize?key=``)."""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from tests.fakes.http import FakeHttpApi
from tests.fakes.tone import tone_for, wav_bytes

MAX_INPUT_BYTES = 5_000
ENCODINGS = {"LINEAR16", "MP3", "OGG_OPUS", "MULAW", "ALAW", "PCM", "M4A"}


def google_error(status: int, state: str, message: str, reason: str | None = None) -> web.Response:
    error: dict[str, Any] = {"code": status, "message": message, "status": state}
    if reason is not None:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}]
    return web.json_response({"error": error}, status=status)


class FakeGoogleTts(FakeHttpApi):
    """Checks the ``key`` query, the JSON body (input, voice, audioConfig); answers base64 WAV.

    The JSON answer goes out in two chunks, so ``cut_stream_after=1`` cuts it mid-body.
    """

    def __init__(self, api_key: str = "google-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.texts: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.empty_audio = False

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/text:synthesize", self.synthesize)

    def audio_for(self, text: str, sample_rate: int = 24_000) -> bytes:
        return tone_for(text, sample_rate)

    def _problem(self, request: web.Request, body: Any) -> web.Response | None:
        """What the real API would refuse in this request, or None."""
        key = request.query.get("key")
        try:
            text = body["input"]["text"]
            language = body["voice"]["languageCode"]
            encoding = body["audioConfig"]["audioEncoding"]
        except (KeyError, TypeError) as error:
            text = language = encoding = None
            invalid = f"Invalid request: missing {error}"
        else:
            invalid = "input.text and voice.languageCode must be non-empty strings."
        if key is None:
            return google_error(
                403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers."
            )
        message = None
        if key != self.api_key:
            return google_error(
                400, "INVALID_ARGUMENT", "API key not valid.", reason="API_KEY_INVALID"
            )
        if not request.content_type.startswith("application/json"):
            message = "Expected a JSON body."
        elif not isinstance(text, str) or not text or not isinstance(language, str):
            message = invalid
        elif len(text.encode("utf-8")) > MAX_INPUT_BYTES:
            message = "input.text is longer than 5000 bytes."
        elif encoding not in ENCODINGS:
            message = f"Invalid audioEncoding {encoding!r}."
        elif encoding != "LINEAR16":
            message = "This fake only produces LINEAR16."
        return None if message is None else google_error(400, "INVALID_ARGUMENT", message)

    async def synthesize(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        try:
            body = json.loads(recorded.body)
        except ValueError:
            body = None
        problem = self._problem(request, body)
        if problem is not None:
            return problem
        text = body["input"]["text"]
        rate = int(body["audioConfig"].get("sampleRateHertz", 24_000))
        self.texts.append(text)
        self.bodies.append(body)
        failure = await self.before_response()
        if failure is not None:
            return failure
        pcm = b"" if self.empty_audio else self.audio_for(text, rate)
        answer = json.dumps({"audioContent": base64.b64encode(wav_bytes(pcm, rate)).decode()})
        data = answer.encode()
        middle = len(data) // 2
        return await self.stream_chunks(request, [data[:middle], data[middle:]], "application/json")
