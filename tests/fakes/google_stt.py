"""A local stand-in for Google Cloud Speech-to-Text v1 ``POST /v1/speech:recognize``."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from tests.fakes.http import FakeHttpApi, RecordedRequest
from tests.fakes.speech_upload import Refusal, UploadError, read_wav

ENCODINGS = ("LINEAR16", "FLAC", "MULAW", "AMR", "AMR_WB", "OGG_OPUS", "WEBM_OPUS", "MP3")
MAX_SYNC_SECONDS = 60.0


class FakeGoogleSpeech(FakeHttpApi):
    """Checks ``?key=`` (403 missing, 400 API_KEY_INVALID wrong, as Google does), the JSON
    config (encoding, languageCode, sample rate matching the WAV header) and the one-minute
    sync limit; answers ``transcript`` with ``confidence``."""

    def __init__(self, api_key: str = "AIza-test-google-0123456789") -> None:
        super().__init__()
        self.api_key = api_key
        self.transcript = "hello there"
        self.confidence = 0.92
        self.bodies: list[dict[str, Any]] = []  # accepted request bodies, audio left out

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/speech:recognize", self._recognize)

    @staticmethod
    def _refuse(status: int, state: str, message: str, reason: str | None = None) -> Refusal:
        error: dict[str, Any] = {"code": status, "message": message, "status": state}
        if reason is not None:
            info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}
            error["details"] = [{**info, "domain": "googleapis.com"}]
        return Refusal(web.json_response({"error": error}, status=status))

    def _invalid(self, message: str) -> Refusal:
        return self._refuse(400, "INVALID_ARGUMENT", message)

    async def _recognize(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        injected = await self.before_response()
        if injected is not None:
            return injected
        try:
            config, duration = self._accept(recorded)
        except Refusal as refusal:
            return refusal.response
        self.bodies.append({"config": config})
        return web.json_response(self._response(config["languageCode"], duration))

    def _accept(self, recorded: RecordedRequest) -> tuple[dict[str, Any], float]:
        key = recorded.query.get("key") or recorded.headers.get("X-Goog-Api-Key")
        if not key:
            raise self._refuse(403, "PERMISSION_DENIED", "The request is missing a valid API key.")
        if key != self.api_key:
            raise self._refuse(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                reason="API_KEY_INVALID",
            )
        if not recorded.headers.get("Content-Type", "").startswith("application/json"):
            raise self._invalid("Invalid JSON payload: expected Content-Type application/json")
        try:
            body = json.loads(recorded.body)
        except ValueError:
            raise self._invalid("Invalid JSON payload received.") from None
        if not isinstance(body, dict) or not isinstance(body.get("config"), dict):
            raise self._invalid("Invalid recognition 'config': config is required")
        config: dict[str, Any] = body["config"]
        self._check_config(config)
        return config, self._duration(config, body.get("audio"))

    def _check_config(self, config: dict[str, Any]) -> None:
        if config.get("encoding", "LINEAR16") not in ENCODINGS:
            raise self._invalid(f"Invalid value at 'config.encoding' ({config.get('encoding')})")
        if not isinstance(config.get("languageCode"), str) or not config["languageCode"]:
            raise self._invalid("Invalid recognition 'config': language_code is required")
        contexts = config.get("speechContexts", [])
        if not isinstance(contexts, list) or not all(
            isinstance(context, dict) and isinstance(context.get("phrases", []), list)
            for context in contexts
        ):
            raise self._invalid("Invalid value at 'config.speech_contexts'")

    def _duration(self, config: dict[str, Any], audio: object) -> float:
        if not isinstance(audio, dict) or not isinstance(audio.get("content"), str):
            raise self._invalid("RecognitionAudio not set.")
        try:
            content = base64.b64decode(audio["content"], validate=True)
        except (binascii.Error, ValueError):
            raise self._invalid(
                "Invalid value at 'audio.content', Base64 decoding failed"
            ) from None
        rate = config.get("sampleRateHertz")
        if content.startswith(b"RIFF"):
            try:
                duration = read_wav(content, sample_rate=rate or 16_000).duration_seconds
            except UploadError as error:
                raise self._invalid(
                    f"sample_rate_hertz must match the WAV header: {error}"
                ) from None
        elif isinstance(rate, int) and content:
            duration = len(content) / 2 / rate
        else:
            raise self._invalid("sample_rate_hertz is required for raw LINEAR16 audio")
        if duration > MAX_SYNC_SECONDS:
            raise self._invalid(
                "Sync input too long. For audio longer than 1 min use LongRunningRecognize "
                "with a 'uri' parameter."
            )
        return duration

    def _response(self, language: str, duration: float) -> dict[str, Any]:
        response: dict[str, Any] = {
            "totalBilledTime": f"{max(1, round(duration))}s",
            "requestId": str(1000 + len(self.bodies)),
        }
        if self.transcript:
            alternative = {"transcript": self.transcript, "confidence": self.confidence}
            response["results"] = [
                {
                    "alternatives": [alternative],
                    "resultEndTime": f"{duration:.3f}s",
                    "languageCode": language.lower(),
                }
            ]
        return response
