"""The ``openai`` agent: any OpenAI-compatible chat completions server and model."""

from __future__ import annotations

import openai

from openclaw_voice.agent.chat import SDK_TIMEOUT_SECONDS, ChatCompletionsAgent
from openclaw_voice.agent.failures import agent_error
from openclaw_voice.agent.usage import UsageObserver
from openclaw_voice.config import Settings
from openclaw_voice.errors import ErrorKind
from openclaw_voice.secret import Secret

KEY_VARIABLE = "OPENAI_API_KEY"
NOT_FOUND = "no chat completions endpoint or model there; check OPENAI_BASE_URL and AGENT_MODEL"


class OpenAIAgent(ChatCompletionsAgent):
    """Streams a reply from ``model`` at ``base_url`` (the ``/v1`` root of the API)."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: Secret,
        model: str,
        wake_name: str,
        usage_observer: UsageObserver | None = None,
        timeout: float = SDK_TIMEOUT_SECONDS,
    ) -> None:
        client = openai.AsyncOpenAI(
            base_url=base_url.rstrip("/"),
            api_key=api_key.reveal(),
            max_retries=0,
            timeout=timeout,
        )
        super().__init__(
            name="openai",
            client=client,
            model=model,
            wake_name=wake_name,
            not_found=NOT_FOUND,
            usage_observer=usage_observer,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, usage_observer: UsageObserver | None = None
    ) -> OpenAIAgent:
        key = settings.provider_keys.get(KEY_VARIABLE)
        if key is None:
            raise agent_error("openai", ErrorKind.NOT_CONFIGURED, f"{KEY_VARIABLE} must be set")
        return cls(
            base_url=settings.openai_base_url,
            api_key=key,
            model=settings.speech.agent_model,
            wake_name=settings.speech.wake_name,
            usage_observer=usage_observer,
        )
