"""One voice channel's call: its participants and the DAVE group the fake steers.

The fake is the MLS external sender. It tracks the group's epoch and leaf layout the same
way members do (creator at leaf 0, Adds fill the leftmost blank leaf, Removes blank theirs),
so it can propose Removes by leaf index and tell who must receive the Commit or the Welcome.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from tests.fakes.discord.dave import (
    ExternalSender,
    MlsDecodeError,
    SignedProposal,
    group_id_for_channel,
    parse_commit,
    proposals_append,
    proposals_revoke,
)
from tests.fakes.discord.recorder import Recorder

log = structlog.get_logger()


class DaveParticipant(Protocol):
    """A call member as the DAVE server sees it (the bot's websocket or a simulated user)."""

    @property
    def user_id(self) -> int: ...

    @property
    def key_package(self) -> bytes | None: ...

    async def dave_external_sender(self, package: bytes) -> None: ...

    async def dave_proposals(self, body: bytes, *, commit_expected: bool) -> None: ...

    async def dave_commit(self, transition_id: int, commit: bytes) -> None: ...

    async def dave_welcome(self, transition_id: int, welcome: bytes) -> None: ...

    async def dave_execute_transition(self, transition_id: int) -> None: ...

    async def dave_prepare_epoch(self, epoch: int, version: int) -> None: ...

    async def dave_prepare_transition(self, transition_id: int, version: int) -> None: ...


@dataclass
class _Round:
    """Proposals sent and not yet committed."""

    committer: int
    proposals: dict[bytes, tuple[str, int]]
    creating: bool
    members_before: list[int]


@dataclass
class Call:
    guild_id: int
    channel_id: int
    recorder: Recorder
    external_sender: ExternalSender
    dave_version: int
    participants: dict[int, DaveParticipant] = field(default_factory=dict)
    bot_user_id: int | None = None
    epoch: int = 0
    leaves: list[int | None] = field(default_factory=list)
    stale: set[int] = field(default_factory=set)
    transition_counter: int = 0
    awaiting_ready: dict[int, set[int]] = field(default_factory=dict)
    epoch_changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    welcome_holds: set[int] = field(default_factory=set)
    _held_welcomes: list[tuple[int, int, bytes]] = field(default_factory=list)
    _round: _Round | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def group_id(self) -> bytes:
        return group_id_for_channel(self.channel_id)

    def members(self) -> list[int]:
        return [uid for uid in self.leaves if uid is not None]

    # --- membership --------------------------------------------------------------------

    async def join(self, participant: DaveParticipant, *, is_bot: bool = False) -> None:
        async with self._lock:
            self.participants[participant.user_id] = participant
            if is_bot:
                self.bot_user_id = participant.user_id
            if self.dave_version > 0:
                await participant.dave_external_sender(self.external_sender.package())
            await self._reconcile()

    async def leave(self, user_id: int) -> None:
        async with self._lock:
            self.participants.pop(user_id, None)
            if self.bot_user_id == user_id:
                self.bot_user_id = None
            for waiting in self.awaiting_ready.values():
                waiting.discard(user_id)
            await self._reconcile()

    async def key_package_changed(self, user_id: int) -> None:
        """A participant (re)sent its key package: re-add it if it was in the group."""
        async with self._lock:
            if user_id in self.members():
                self.stale.add(user_id)
            await self._reconcile()

    # --- proposals and commits ---------------------------------------------------------

    def _committer(self, candidates: list[int]) -> int:
        if self.bot_user_id is not None and self.bot_user_id in candidates:
            return self.bot_user_id
        return candidates[0]

    async def _reconcile(self) -> None:
        if self.dave_version == 0 or self._round is not None:
            return
        present = {uid for uid, p in self.participants.items() if p.key_package is not None}
        members = self.members()
        if members and not any(uid in self.participants for uid in members):
            self._reset_group()
            members = []
        if not members:
            ordered = sorted(present, key=lambda uid: (uid != self.bot_user_id, uid))
            if len(ordered) < 2:
                return
            creator = self._committer(ordered)
            adds = [uid for uid in ordered if uid != creator]
            proposals = [(self._add(uid), ("add", uid)) for uid in adds]
            await self._send_round(creator, proposals, creating=True, targets=[creator])
            return
        removes = [uid for uid in members if uid not in self.participants or uid in self.stale]
        adds = sorted(uid for uid in present if uid not in members or uid in self.stale)
        if not removes and not adds:
            return
        signed: list[tuple[SignedProposal, tuple[str, int]]] = []
        for uid in removes:
            leaf = self.leaves.index(uid)
            proposal = self.external_sender.remove_proposal(self.group_id, self.epoch, leaf)
            signed.append((proposal, ("remove", uid)))
        for uid in adds:
            signed.append((self._add(uid), ("add", uid)))
        remaining = [uid for uid in members if uid in self.participants and uid not in self.stale]
        if not remaining:
            self._reset_group()
            await self._reconcile()
            return
        await self._send_round(
            self._committer(remaining), signed, creating=False, targets=remaining
        )

    def _add(self, user_id: int) -> SignedProposal:
        package = self.participants[user_id].key_package
        assert package is not None
        return self.external_sender.add_proposal(self.group_id, self.epoch, package)

    def _reset_group(self) -> None:
        self.leaves = []
        self.epoch = 0
        self.stale.clear()

    async def _send_round(
        self,
        committer: int,
        proposals: list[tuple[SignedProposal, tuple[str, int]]],
        *,
        creating: bool,
        targets: list[int],
    ) -> None:
        self._round = _Round(
            committer=committer,
            proposals={p.ref: meaning for p, meaning in proposals},
            creating=creating,
            members_before=[] if creating else self.members(),
        )
        body = proposals_append([p for p, _ in proposals])
        self.recorder.record(
            "dave_proposals",
            channel_id=self.channel_id,
            epoch=self.epoch,
            proposals=[meaning for _, meaning in proposals],
            committer=committer,
        )
        for uid in targets:
            participant = self.participants.get(uid)
            if participant is not None:
                await participant.dave_proposals(body, commit_expected=uid == committer)

    async def commit_welcome(self, sender: int, data: bytes) -> None:
        """Op 28 from ``sender``: the Commit, optionally followed by the Welcome."""
        async with self._lock:
            pending = self._round
            if pending is None or pending.committer != sender:
                self.recorder.record(
                    "dave_commit_ignored", channel_id=self.channel_id, sender=sender
                )
                return
            try:
                parsed = parse_commit(data)
            except MlsDecodeError:
                log.warning("fake_discord.dave.bad_commit", sender=sender)
                self.recorder.record(
                    "dave_commit_ignored", channel_id=self.channel_id, sender=sender
                )
                return
            if parsed.epoch != self.epoch or set(parsed.proposal_refs) - set(pending.proposals):
                self.recorder.record(
                    "dave_commit_ignored", channel_id=self.channel_id, sender=sender
                )
                return
            commit, welcome = data[: parsed.end], data[parsed.end :]
            if pending.creating:
                self.leaves = [sender]
            added: list[int] = []
            for kind, uid in (pending.proposals[ref] for ref in parsed.proposal_refs):
                if kind == "remove" and uid in self.leaves:
                    self.leaves[self.leaves.index(uid)] = None
            for kind, uid in (pending.proposals[ref] for ref in parsed.proposal_refs):
                if kind == "add":
                    self._place(uid)
                    added.append(uid)
            while self.leaves and self.leaves[-1] is None:
                self.leaves.pop()
            self.stale -= set(added)
            self.epoch += 1
            self._round = None
            self.transition_counter = self.transition_counter % 65535 + 1
            transition_id = self.transition_counter
            receivers_commit = [
                uid
                for uid in ([sender] if pending.creating else pending.members_before)
                if uid in self.participants and uid in self.leaves and uid not in added
            ]
            receivers_welcome = [uid for uid in added if uid in self.participants]
            if self.bot_user_id is not None and self.bot_user_id in self.leaves:
                self.awaiting_ready[transition_id] = {self.bot_user_id}
            self.recorder.record(
                "dave_commit",
                channel_id=self.channel_id,
                epoch=self.epoch,
                sender=sender,
                transition_id=transition_id,
                members=self.members(),
            )
            for uid in receivers_commit:
                await self.participants[uid].dave_commit(transition_id, commit)
            for uid in receivers_welcome:
                await self._welcome(uid, transition_id, welcome)
            async with self.epoch_changed:
                self.epoch_changed.notify_all()
            await self._reconcile()

    async def _welcome(self, user_id: int, transition_id: int, welcome: bytes) -> None:
        if user_id in self.welcome_holds:
            self._held_welcomes.append((user_id, transition_id, welcome))
            self.recorder.record(
                "dave_welcome_held",
                channel_id=self.channel_id,
                user_id=user_id,
                transition_id=transition_id,
            )
            return
        await self.participants[user_id].dave_welcome(transition_id, welcome)

    def _place(self, user_id: int) -> None:
        for index, occupant in enumerate(self.leaves):
            if occupant is None:
                self.leaves[index] = user_id
                return
        self.leaves.append(user_id)

    async def transition_ready(self, user_id: int, transition_id: int) -> None:
        async with self._lock:
            waiting = self.awaiting_ready.get(transition_id)
            if waiting is None:
                return
            waiting.discard(user_id)
            if waiting:
                return
            del self.awaiting_ready[transition_id]
            self.recorder.record(
                "dave_transition_executed", channel_id=self.channel_id, transition_id=transition_id
            )
            for participant in list(self.participants.values()):
                await participant.dave_execute_transition(transition_id)

    async def invalid_commit(self, user_id: int, transition_id: int) -> None:
        """Op 31: the member could not use a commit/welcome; it re-sends a key package."""
        async with self._lock:
            self.recorder.record(
                "dave_invalid_commit",
                channel_id=self.channel_id,
                user_id=user_id,
                transition_id=transition_id,
            )
            if user_id in self.members():
                self.stale.add(user_id)
            self.awaiting_ready.pop(transition_id, None)

    def hold_welcomes(self, user_id: int) -> None:
        """Fault: keep op 30 (Welcome) for ``user_id`` until :meth:`release_welcomes`.

        Like a slow path to that member: the others process the Commit and encrypt under the
        new epoch, while the held member has no key ratchet for them yet.
        """
        self.welcome_holds.add(user_id)

    async def release_welcomes(self, user_id: int) -> int:
        """Deliver the Welcomes held for ``user_id`` (in order); returns how many."""
        async with self._lock:
            self.welcome_holds.discard(user_id)
            held = [item for item in self._held_welcomes if item[0] == user_id]
            self._held_welcomes = [item for item in self._held_welcomes if item[0] != user_id]
            for uid, transition_id, welcome in held:
                participant = self.participants.get(uid)
                if participant is not None:
                    await participant.dave_welcome(transition_id, welcome)
            return len(held)

    async def inject_invalid_commit(self, user_id: int) -> int:
        """Fault: announce a garbage commit (op 29) to ``user_id``; returns its transition id.

        A DAVE client answers op 31 and re-sends a key package; the fake then replaces the
        member's leaf in the next round.
        """
        async with self._lock:
            self.transition_counter = self.transition_counter % 65535 + 1
            transition_id = self.transition_counter
            self.recorder.record(
                "dave_garbage_commit",
                channel_id=self.channel_id,
                user_id=user_id,
                transition_id=transition_id,
            )
            participant = self.participants[user_id]
            await participant.dave_commit(transition_id, b"\x00\x01\x00\x01garbage-commit")
            return transition_id

    async def propose_and_revoke(self, key_package: bytes) -> None:
        """Fault: propose adding ``key_package`` to the group, then revoke the proposal
        (what Discord does when the joining member leaves before the commit). Commits that
        reference the revoked proposal are ignored."""
        async with self._lock:
            members = [uid for uid in self.members() if uid in self.participants]
            if self._round is not None or not members:
                raise RuntimeError("needs an established group and no open proposal round")
            proposal = self.external_sender.add_proposal(self.group_id, self.epoch, key_package)
            self.recorder.record("dave_revoke", channel_id=self.channel_id, epoch=self.epoch)
            append = proposals_append([proposal])
            revoke = proposals_revoke([proposal.ref])
            for uid in members:
                await self.participants[uid].dave_proposals(append, commit_expected=False)
            for uid in members:
                await self.participants[uid].dave_proposals(revoke, commit_expected=False)

    async def downgrade(self) -> int:
        """Transition the call to protocol version 0 (op 21 → op 23 → op 22): everyone
        sends unencrypted (passthrough) Opus from then on. Returns the transition id."""
        async with self._lock:
            self.transition_counter = self.transition_counter % 65535 + 1
            transition_id = self.transition_counter
            self.dave_version = 0
            self._round = None
            if self.bot_user_id is not None and self.bot_user_id in self.participants:
                self.awaiting_ready[transition_id] = {self.bot_user_id}
            self.recorder.record(
                "dave_downgrade", channel_id=self.channel_id, transition_id=transition_id
            )
            for participant in list(self.participants.values()):
                await participant.dave_prepare_transition(transition_id, 0)
            if transition_id not in self.awaiting_ready:
                for participant in list(self.participants.values()):
                    await participant.dave_execute_transition(transition_id)
            return transition_id

    async def reset_epoch(self) -> None:
        """Op 24 (epoch 1): every member re-creates its session and the group is rebuilt."""
        async with self._lock:
            self._reset_group()
            self._round = None
            self.recorder.record("dave_epoch_reset", channel_id=self.channel_id)
            for participant in list(self.participants.values()):
                await participant.dave_prepare_epoch(1, self.dave_version)
            for participant in list(self.participants.values()):
                await participant.dave_external_sender(self.external_sender.package())
            await self._reconcile()

    async def wait_for_group(self, user_ids: set[int], within: float = 10.0) -> None:
        """Until the group holds exactly ``user_ids`` and no proposal round is open."""

        def settled() -> bool:
            return set(self.members()) == user_ids and self._round is None

        async def wait() -> None:
            async with self.epoch_changed:
                await self.epoch_changed.wait_for(settled)

        await asyncio.wait_for(wait(), within)
