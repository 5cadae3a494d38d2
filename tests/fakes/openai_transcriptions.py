"""A local stand-in for OpenAI's ``POST /v1/audio/transcriptions`` (multipart upload)."""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from tests.fakes.http import FakeHttpApi, RecordedRequest
from tests.fakes.speech_upload import FormPart, Refusal, UploadError, parse_multipart, read_wav

MAX_FILE_BYTES = 25 * 1024 * 1024
MODELS = (
    "whisper-1",
    "gpt-transcribe",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
)
FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
EXTENSIONS = ("flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav", "webm")


class FakeOpenAITranscriptions(FakeHttpApi):
    """Checks the bearer key, the form (file, model, formats the model supports) and that
    the file is a 16 kHz mono WAV; answers ``transcript`` as json or verbose_json."""

    def __init__(self, api_key: str = "sk-test-openai-0123456789") -> None:
        super().__init__()
        self.api_key = api_key
        self.transcript = "hello there"
        self.language_name = "english"  # what verbose_json reports
        self.logprob = -0.05  # per token / segment average
        self.forms: list[dict[str, str]] = []  # text fields of each accepted request

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)

    @staticmethod
    def _refuse(status: int, message: str, code: str | None = None) -> Refusal:
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
        return Refusal(web.json_response({"error": error}, status=status))

    async def _transcriptions(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        injected = await self.before_response()
        if injected is not None:
            return injected
        try:
            fields, duration = self._accept(recorded)
        except Refusal as refusal:
            return refusal.response
        self.forms.append(fields)
        return self._answer(fields, duration)

    def _accept(self, recorded: RecordedRequest) -> tuple[dict[str, str], float]:
        if recorded.headers.get("Authorization") != f"Bearer {self.api_key}":
            raise self._refuse(401, "Incorrect API key provided.", "invalid_api_key")
        if len(recorded.body) > MAX_FILE_BYTES:
            raise self._refuse(413, f"Maximum content size limit ({MAX_FILE_BYTES}) exceeded")
        try:
            form = parse_multipart(recorded.headers.get("Content-Type", ""), recorded.body)
        except UploadError as error:
            raise self._refuse(400, f"Could not parse multipart form: {error}") from None
        fields = {name: parts[0].text for name, parts in form.items() if name != "file"}
        self._check_fields(fields)
        if "file" not in form:
            raise self._refuse(400, "'file' is a required property")
        return fields, self._duration(form["file"][0])

    def _check_fields(self, fields: dict[str, str]) -> None:
        model = fields.get("model")
        if not model:
            raise self._refuse(400, "you must provide a model parameter")
        if model not in MODELS:
            raise self._refuse(400, f"Invalid model {model!r}")
        response_format = fields.get("response_format", "json")
        if response_format not in FORMATS:
            raise self._refuse(400, f"Invalid response_format {response_format!r}")
        if response_format not in {"json", "text"} and model != "whisper-1":
            raise self._refuse(
                400, f"response_format '{response_format}' is not compatible with model '{model}'"
            )
        if "include[]" in fields and (model == "whisper-1" or response_format != "json"):
            raise self._refuse(400, "logprobs need a gpt-4o transcription model and json")
        language = fields.get("language")
        if language is not None and (len(language) != 2 or not language.isalpha()):
            raise self._refuse(400, f"Invalid language {language!r}: expected ISO-639-1")

    def _duration(self, upload: FormPart) -> float:
        extension = (upload.filename or "").rsplit(".", 1)[-1].lower()
        if extension not in EXTENSIONS:
            raise self._refuse(400, f"Invalid file format. Supported formats: {list(EXTENSIONS)}")
        try:
            return read_wav(upload.data).duration_seconds
        except UploadError as error:
            raise self._refuse(400, f"Audio file might be corrupted: {error}") from None

    def _answer(self, fields: dict[str, str], duration: float) -> web.Response:
        response_format = fields.get("response_format", "json")
        words = self.transcript.split()
        if response_format == "text":
            return web.Response(text=self.transcript, content_type="text/plain")
        if response_format == "verbose_json":
            segment = {
                "id": 0,
                "seek": 0,
                "start": 0.0,
                "end": duration,
                "text": self.transcript,
                "tokens": list(range(50364, 50364 + len(words))),
                "temperature": 0.0,
                "avg_logprob": self.logprob,
                "compression_ratio": 1.0,
                "no_speech_prob": 0.01,
            }
            body: dict[str, Any] = {
                "task": "transcribe",
                "language": self.language_name,
                "duration": duration,
                "text": self.transcript,
                "segments": [segment] if words else [],
                "usage": {"type": "duration", "seconds": math.ceil(duration)},
            }
        else:
            body = {
                "text": self.transcript,
                "usage": {
                    "type": "tokens",
                    "input_tokens": 20,
                    "output_tokens": len(words),
                    "total_tokens": 20 + len(words),
                },
            }
            if fields.get("include[]") == "logprobs":
                body["logprobs"] = [
                    {"token": word, "logprob": self.logprob, "bytes": list(word.encode())}
                    for word in words
                ]
        return web.Response(text=json.dumps(body), content_type="application/json")
