"""Local fake of Azure Speech text-to-speech REST (``POST /cognitiveservices/v1``, SSML)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from aiohttp import web

from tests.fakes.http import FakeHttpApi
from tests.fakes.tone import odd_chunks, tone_for

SSML = "{http://www.w3.org/2001/10/synthesis}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
RAW_FORMATS = {
    "raw-16khz-16bit-mono-pcm": 16_000,
    "raw-24khz-16bit-mono-pcm": 24_000,
    "raw-48khz-16bit-mono-pcm": 48_000,
}


class FakeAzureTts(FakeHttpApi):
    """Checks the subscription key, content type, output format header and that the SSML
    is well-formed ``<speak version xml:lang><voice name>``; streams raw PCM chunked."""

    def __init__(self, api_key: str = "azure-test-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.texts: list[str] = []
        self.voices: list[str] = []
        self.ssml: list[str] = []
        self.empty_audio = False

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/cognitiveservices/v1", self.synthesize)

    def audio_for(self, text: str, sample_rate: int = 24_000) -> bytes:
        return tone_for(text, sample_rate)

    def _problem(self, request: web.Request, body: bytes) -> str | None:
        """Why the real service would refuse this request (400), or None."""
        if request.content_type != "application/ssml+xml":
            return "Content-Type must be application/ssml+xml."
        if request.headers.get("X-Microsoft-OutputFormat", "") not in RAW_FORMATS:
            return "Unsupported X-Microsoft-OutputFormat."
        try:
            root = ET.fromstring(body)  # noqa: S314 - our own client's SSML, in a test
        except ET.ParseError as error:
            return f"SSML is not well-formed: {error}"
        voice = root.find(f"{SSML}voice")
        if (
            root.tag != f"{SSML}speak"
            or root.get("version") != "1.0"
            or not root.get(XML_LANG)
            or voice is None
            or not voice.get("name")
        ):
            return "SSML needs <speak version xml:lang><voice name>."
        return None

    async def synthesize(self, request: web.Request) -> web.StreamResponse:
        recorded = await self.record(request)
        if request.headers.get("Ocp-Apim-Subscription-Key") != self.api_key:
            return web.Response(status=401, text="Access denied due to invalid subscription key.")
        problem = self._problem(request, recorded.body)
        if problem is not None:
            return web.Response(status=400, text=problem)
        voice = ET.fromstring(recorded.body).find(f"{SSML}voice")  # noqa: S314
        assert voice is not None
        text = "".join(voice.itertext())
        self.texts.append(text)
        self.voices.append(voice.get("name", ""))
        self.ssml.append(recorded.body.decode())
        failure = await self.before_response()
        if failure is not None:
            return failure
        rate = RAW_FORMATS[request.headers["X-Microsoft-OutputFormat"]]
        audio = b"" if self.empty_audio else self.audio_for(text, rate)
        return await self.stream_chunks(request, odd_chunks(audio), "audio/x-wav")
