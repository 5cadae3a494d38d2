"""Slot roles: the active lock, promotions and demotions, and the admin endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from openclaw_voice.ops.admin import role_handler
from openclaw_voice.ops.server import OpsServer
from openclaw_voice.ops.slot import ActiveLock, RoleConflict, SlotController
from openclaw_voice.ops.status import AppStatus
from openclaw_voice.secret import Secret

TOKEN = "admin-token-for-tests-0123"


class Calls:
    def __init__(self) -> None:
        self.log: list[str] = []
        self.fail_promotion = False

    async def promote(self) -> None:
        self.log.append("promote")
        if self.fail_promotion:
            raise RuntimeError("discord unreachable")

    async def demote(self) -> None:
        self.log.append("demote")


def controller(tmp_path: Path, slot: str, calls: Calls) -> SlotController:
    return SlotController(
        AppStatus(version="1", environment="test"),
        ActiveLock(tmp_path, slot),
        on_promote=calls.promote,
        on_demote=calls.demote,
    )


async def test_only_one_slot_can_be_active(tmp_path: Path) -> None:
    blue_calls, green_calls = Calls(), Calls()
    blue, green = (
        controller(tmp_path, "blue", blue_calls),
        controller(tmp_path, "green", green_calls),
    )
    assert blue.role == "standby"
    assert blue.status.not_ready_reasons()[0] == "standby"
    await blue.set_role("active")
    assert blue.acting.is_set()
    with pytest.raises(RoleConflict, match="held by slot blue"):
        await green.set_role("active")
    assert green.role == "standby"
    assert green_calls.log == []
    await blue.set_role("standby")
    await green.set_role("active")
    assert (blue_calls.log, green_calls.log) == (["promote", "demote"], ["promote"])
    await green.set_role("active")  # idempotent
    assert green_calls.log == ["promote"]


async def test_failed_promotion_leaves_standby_and_the_lock_free(tmp_path: Path) -> None:
    calls = Calls()
    calls.fail_promotion = True
    blue = controller(tmp_path, "blue", calls)
    with pytest.raises(RuntimeError, match="discord unreachable"):
        await blue.set_role("active")
    assert blue.role == "standby"
    assert not blue.acting.is_set()
    other = controller(tmp_path, "green", Calls())
    await other.set_role("active")  # the lock was released


async def test_wait_acting(tmp_path: Path) -> None:
    blue = controller(tmp_path, "blue", Calls())
    assert not await blue.wait_acting(0.01)
    waiter = asyncio.create_task(blue.wait_acting(5))
    await blue.set_role("active")
    assert await waiter


@pytest.fixture
async def admin_server(
    tmp_path: Path,
) -> AsyncIterator[tuple[OpsServer, SlotController, SlotController]]:
    blue = controller(tmp_path, "blue", Calls())
    green = controller(tmp_path, "green", Calls())
    server = OpsServer(blue.status, None, port=0, admin=role_handler(blue, Secret(TOKEN)))
    await server.start()
    yield server, blue, green
    await server.stop()


async def post_role(server: OpsServer, body: object, token: str = TOKEN) -> tuple[int, object]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.url}/admin/role",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        return response.status, await response.json()


async def test_admin_endpoint_promotes_refuses_and_validates(
    admin_server: tuple[OpsServer, SlotController, SlotController],
) -> None:
    server, blue, green = admin_server
    assert await post_role(server, {"role": "active"}, token="wrong") == (
        401,
        {"error": "missing or wrong admin token"},
    )
    status, body = await post_role(server, {"role": "primary"})
    assert status == 400
    assert "role must be active or standby" in str(body)
    status, body = await post_role(server, "not an object")
    assert status == 400
    await green.set_role("active")
    status, body = await post_role(server, {"role": "active"})
    assert status == 409
    assert "held by slot green" in str(body)
    await green.set_role("standby")
    assert await post_role(server, {"role": "active"}) == (200, {"role": "active"})
    assert blue.role == "active"
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{server.url}/ready") as ready,
    ):
        assert (await ready.json())["reasons"] == ["discord not connected"]
    assert await post_role(server, {"role": "standby"}) == (200, {"role": "standby"})


async def test_admin_endpoint_is_off_without_a_token(tmp_path: Path) -> None:
    server = OpsServer(AppStatus(version="1", environment="test"), None, port=0)
    await server.start()
    try:
        status, _ = await post_role(server, {"role": "active"})
    finally:
        await server.stop()
    assert status == 404
