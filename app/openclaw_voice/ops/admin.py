"""``POST /admin/role``: the deploy playbook's way to promote or demote a slot.

Loopback only (the ops port may face HAProxy) and protected by a bearer token from the
shared secrets file; compared in constant time. A promotion that would make a second
active slot on the host answers 409 and changes nothing.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from typing import cast

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from openclaw_voice.ops.slot import Role, RoleConflict, SlotController
from openclaw_voice.secret import Secret

log = structlog.get_logger(__name__)


def _loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


def _requested_role(text: str) -> tuple[Role | None, str]:
    try:
        role = json.loads(text)["role"]
    except (ValueError, KeyError, TypeError):
        return None, 'expected a JSON body {"role": "active" | "standby"}'
    if role in ("active", "standby"):
        return cast("Role", role), ""
    return None, f"role must be active or standby, found {role!r}"


def role_handler(controller: SlotController, token: Secret) -> Handler:
    expected = f"Bearer {token.reveal()}".encode()

    async def handle(request: web.Request) -> web.Response:
        if not _loopback(request):
            return web.json_response({"error": "admin endpoint is loopback only"}, status=403)
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return web.json_response({"error": "missing or wrong admin token"}, status=401)
        if request.method == "GET":
            return web.json_response({"role": controller.role})
        role, problem = _requested_role(await request.text())
        if role is None:
            return web.json_response({"error": problem}, status=400)
        try:
            await controller.set_role(role)
        except RoleConflict as conflict:
            return web.json_response({"error": str(conflict), "role": controller.role}, status=409)
        log.info("slot role changed by admin request", context={"role": role})
        return web.json_response({"role": controller.role})

    return handle
