"""A local stand-in for Azure Speech's short-audio REST recognition endpoint."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes.http import FakeHttpApi, RecordedRequest
from tests.fakes.speech_upload import Refusal, UploadError, header_params, read_wav

PATH = "/speech/recognition/conversation/cognitiveservices/v1"
MAX_SECONDS = 60.0
TICKS_PER_SECOND = 10_000_000  # Offset and Duration are in 100 ns units


class FakeAzureSpeech(FakeHttpApi):
    """Checks ``Ocp-Apim-Subscription-Key``, ``language`` and ``format``, the WAV content
    type (``codecs=audio/pcm; samplerate=16000``) and the audio itself; answers
    ``transcript`` in the simple or detailed format, or ``recognition_status`` when set."""

    def __init__(self, api_key: str = "azure-test-key-0123456789") -> None:
        super().__init__()
        self.api_key = api_key
        self.transcript = "Hello there."
        self.confidence = 0.87
        self.recognition_status: str | None = None  # e.g. "InitialSilenceTimeout"
        self.queries: list[dict[str, str]] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post(PATH, self._recognize)

    @staticmethod
    def _bad(message: str) -> Refusal:
        return Refusal(web.Response(status=400, text=message))

    async def _recognize(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        injected = await self.before_response()
        if injected is not None:
            return injected
        try:
            output, duration = self._accept(recorded)
        except Refusal as refusal:
            return refusal.response
        self.queries.append(dict(recorded.query))
        return web.json_response(self._result(output, duration))

    def _accept(self, recorded: RecordedRequest) -> tuple[str, float]:
        key = recorded.headers.get("Ocp-Apim-Subscription-Key")
        if key != self.api_key:
            reason = "missing subscription key" if key is None else "invalid subscription key"
            error = {"code": "401", "message": f"Access denied due to {reason}."}
            raise Refusal(web.json_response({"error": error}, status=401))
        language = recorded.query.get("language")
        if not language or "-" not in language:
            raise self._bad("Language is required and must be a locale such as en-US")
        output = recorded.query.get("format", "simple")
        if output not in ("simple", "detailed"):
            raise self._bad(f"Unsupported format {output}")
        mime, params = header_params(recorded.headers.get("Content-Type", ""))
        if mime != "audio/wav" or params.get("codecs") != "audio/pcm":
            raise self._bad("Unsupported audio format")
        try:
            rate = int(params.get("samplerate", ""))
            duration = read_wav(recorded.body, sample_rate=rate).duration_seconds
        except (UploadError, ValueError) as error:
            raise self._bad(f"Invalid audio: {error}") from None
        if duration > MAX_SECONDS:
            raise self._bad("Audio longer than 60 seconds")
        return output, duration

    def _result(self, output: str, duration: float) -> dict[str, Any]:
        status = self.recognition_status or ("Success" if self.transcript else "NoMatch")
        result: dict[str, Any] = {
            "RecognitionStatus": status,
            "Offset": 500_000,
            "Duration": round(duration * TICKS_PER_SECOND),
        }
        if status != "Success":
            return result
        if output == "simple":
            return {**result, "DisplayText": self.transcript}
        lexical = self.transcript.lower().strip(".?!")
        best = {
            "Confidence": self.confidence,
            "Lexical": lexical,
            "ITN": lexical,
            "MaskedITN": lexical,
            "Display": self.transcript,
        }
        return {**result, "DisplayText": self.transcript, "NBest": [best]}
