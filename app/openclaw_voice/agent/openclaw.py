"""The ``openclaw`` agent: the OpenClaw gateway's OpenAI-compatible chat completions endpoint."""

from __future__ import annotations

import openai

from openclaw_voice.agent.base import AgentSession, AgentTurn
from openclaw_voice.agent.chat import SDK_TIMEOUT_SECONDS, ChatCompletionsAgent
from openclaw_voice.agent.failures import agent_error
from openclaw_voice.agent.usage import UsageObserver
from openclaw_voice.config import Settings
from openclaw_voice.errors import ErrorKind
from openclaw_voice.secret import Secret

SESSION_KEY_HEADER = "x-openclaw-session-key"
# What the gateway streams in place of an answer when the agent run fails or returns
# nothing (src/gateway/openai-http.ts); speaking them would read an error out as an answer.
RUN_FAILED = "Error: internal error"
NO_RESPONSE = "No response from OpenClaw."
ENDPOINT_DISABLED = (
    "the gateway has no /v1/chat/completions endpoint; OpenClaw serves it only when "
    "gateway.http.endpoints.chatCompletions.enabled is true in its config"
)


def gateway_api_base(gateway_url: str) -> str:
    """``<gateway>/v1`` from the gateway's base URL (a trailing ``/v1`` is tolerated)."""
    base = gateway_url.rstrip("/")
    return base if base.endswith("/v1") else f"{base}/v1"


def scoped_session_key(agent_id: str, session_key: str) -> str:
    """The session key in OpenClaw's ``agent:<id>:<rest>`` form.

    The gateway uses an explicit session key verbatim, and the key (not ``model``) decides
    which agent runs (openclaw/openclaw#74679, #87316): an unscoped key would land in the
    default agent's sessions.
    """
    if session_key.startswith("agent:"):
        return session_key
    return f"agent:{agent_id.lower()}:{session_key}"


class OpenClawAgent(ChatCompletionsAgent):
    """Streams the reply of OpenClaw agent ``agent_id``; one conversation per voice session."""

    def __init__(
        self,
        *,
        gateway_url: str,
        token: Secret,
        agent_id: str,
        wake_name: str,
        usage_observer: UsageObserver | None = None,
        timeout: float = SDK_TIMEOUT_SECONDS,
    ) -> None:
        client = openai.AsyncOpenAI(
            base_url=gateway_api_base(gateway_url),
            api_key=token.reveal(),
            max_retries=0,
            timeout=timeout,
        )
        super().__init__(
            name="openclaw",
            client=client,
            model=f"openclaw/{agent_id}",
            wake_name=wake_name,
            not_found=ENDPOINT_DISABLED,
            usage_observer=usage_observer,
        )
        self.agent_id = agent_id

    @classmethod
    def from_settings(
        cls, settings: Settings, *, usage_observer: UsageObserver | None = None
    ) -> OpenClawAgent:
        if not settings.openclaw_gateway_url or settings.openclaw_gateway_token is None:
            raise agent_error(
                "openclaw",
                ErrorKind.NOT_CONFIGURED,
                "OPENCLAW_GATEWAY_URL and OPENCLAW_GATEWAY_TOKEN must be set",
            )
        return cls(
            gateway_url=settings.openclaw_gateway_url,
            token=settings.openclaw_gateway_token,
            agent_id=settings.openclaw_agent_id,
            wake_name=settings.speech.wake_name,
            usage_observer=usage_observer,
        )

    def extra_headers(self, session: AgentSession) -> dict[str, str]:
        return {SESSION_KEY_HEADER: scoped_session_key(self.agent_id, session.session_key)}

    def user_field(self, turn: AgentTurn) -> str | None:
        return str(turn.user_id)

    def check_text(self, content: str, finish_reason: object) -> None:
        if content == RUN_FAILED and finish_reason == "stop":
            raise agent_error(
                self.name, ErrorKind.UNAVAILABLE, "the agent run failed on the gateway"
            )
        if content == NO_RESPONSE:
            raise agent_error(self.name, ErrorKind.EMPTY_RESULT, "the agent run gave no answer")
