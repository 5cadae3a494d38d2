"""A local stand-in for ElevenLabs' ``POST /v1/speech-to-text`` (Scribe, multipart upload)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes.http import FakeHttpApi, RecordedRequest
from tests.fakes.speech_upload import Refusal, UploadError, parse_multipart, read_wav

MODELS = ("scribe_v1", "scribe_v1_experimental", "scribe_v2")


class FakeElevenLabsSpeechToText(FakeHttpApi):
    """Checks ``xi-api-key``, ``model_id`` (422 when missing, as FastAPI does) and a 16 kHz
    mono WAV ``file``; answers ``transcript`` with per-word logprobs."""

    def __init__(self, api_key: str = "xi-test-elevenlabs-0123456789") -> None:
        super().__init__()
        self.api_key = api_key
        self.transcript = "hello there"
        self.language_code = "eng"
        self.logprob = -0.1
        self.forms: list[dict[str, str]] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/speech-to-text", self._convert)

    @staticmethod
    def _refuse(status: int, code: str, message: str) -> Refusal:
        body = {"detail": {"status": code, "message": message}}
        return Refusal(web.json_response(body, status=status))

    async def _convert(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        injected = await self.before_response()
        if injected is not None:
            return injected
        try:
            fields, duration = self._accept(recorded)
        except Refusal as refusal:
            return refusal.response
        self.forms.append(fields)
        return web.json_response(self._transcript(duration))

    def _accept(self, recorded: RecordedRequest) -> tuple[dict[str, str], float]:
        key = recorded.headers.get("xi-api-key")
        if key is None:
            raise self._refuse(401, "needs_authorization", "Missing xi-api-key header")
        if key != self.api_key:
            raise self._refuse(401, "invalid_api_key", "Invalid API key")
        try:
            form = parse_multipart(recorded.headers.get("Content-Type", ""), recorded.body)
        except UploadError as error:
            raise self._refuse(400, "invalid_request", str(error)) from None
        fields = {name: parts[0].text for name, parts in form.items() if name != "file"}
        if "model_id" not in fields:
            missing = {"loc": ["body", "model_id"], "msg": "Field required", "type": "missing"}
            raise Refusal(web.json_response({"detail": [missing]}, status=422))
        if fields["model_id"] not in MODELS:
            raise self._refuse(400, "invalid_model_id", f"Unknown model {fields['model_id']}")
        language = fields.get("language_code")
        if language is not None and len(language) not in (2, 3):
            raise self._refuse(400, "invalid_language_code", f"Unknown language {language}")
        if "file" not in form:
            raise self._refuse(400, "invalid_request", "Provide a file or a source_url")
        try:
            return fields, read_wav(form["file"][0].data).duration_seconds
        except UploadError as error:
            raise self._refuse(400, "invalid_audio", str(error)) from None

    def _transcript(self, duration: float) -> dict[str, Any]:
        words: list[dict[str, Any]] = []
        tokens = self.transcript.split()
        step = duration / max(1, len(tokens))
        for index, token in enumerate(tokens):
            if index:
                spacing = {"text": " ", "type": "spacing", "logprob": 0.0}
                words.append({**spacing, "start": index * step, "end": index * step})
            words.append(
                {
                    "text": token,
                    "start": index * step,
                    "end": (index + 1) * step,
                    "type": "word",
                    "logprob": self.logprob,
                    "speaker_id": "speaker_0",
                }
            )
        return {
            "language_code": self.language_code,
            "language_probability": 0.98,
            "text": self.transcript,
            "words": words,
            "transcription_id": f"fake-{len(self.forms)}",
        }
