"""The voice gateway's side of DAVE: the MLS *external sender* (RFC 9420), in pure Python.

The server never joins the MLS group. It owns a P-256 signing key, announces it (op 25),
wraps clients' key packages into Add proposals and departed members into Remove proposals
(op 27), and relays the Commit/Welcome a member sends back (op 28 → op 29/op 30).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

MLS_VERSION_10 = 1
WIRE_PUBLIC_MESSAGE = 1
WIRE_WELCOME = 3
SENDER_MEMBER = 1
SENDER_EXTERNAL = 2
CONTENT_PROPOSAL = 2
CONTENT_COMMIT = 3
PROPOSAL_ADD = 1
PROPOSAL_REMOVE = 3
CREDENTIAL_BASIC = 1


class MlsDecodeError(ValueError):
    """The bytes are not the MLS structure the fake expected."""


def varint(value: int) -> bytes:
    """RFC 9420 §2.1.2 variable-length integer."""
    if value < 1 << 6:
        return bytes([value])
    if value < 1 << 14:
        return struct.pack(">H", 0x4000 | value)
    if value < 1 << 30:
        return struct.pack(">I", 0x8000_0000 | value)
    raise ValueError("vector too long for an MLS varint")


def vector(data: bytes) -> bytes:
    """``opaque data<V>``: a varint length then the bytes."""
    return varint(len(data)) + data


class Reader:
    """A cursor over TLS-presentation-language bytes."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    def take(self, count: int) -> bytes:
        end = self.offset + count
        if end > len(self.data):
            raise MlsDecodeError("truncated MLS structure")
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def varint(self) -> int:
        first = self.uint(1)
        prefix = first >> 6
        if prefix == 0:
            return first
        if prefix == 1:
            return ((first & 0x3F) << 8) | self.uint(1)
        if prefix == 2:
            return ((first & 0x3F) << 24) | self.uint(3)
        raise MlsDecodeError("invalid varint prefix")

    def vector(self) -> bytes:
        return self.take(self.varint())


def group_id_for_channel(channel_id: int) -> bytes:
    return struct.pack(">Q", channel_id)


@dataclass(frozen=True)
class SignedProposal:
    """An MLSMessage holding a PublicMessage proposal, and its ProposalRef."""

    message: bytes
    ref: bytes


class ExternalSender:
    """The fake voice gateway's MLS identity: a P-256 key and a basic credential."""

    def __init__(self, identity: bytes = b"fake-discord-voice") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.public_key = self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.identity = identity

    def package(self) -> bytes:
        """The op 25 body: ExternalSender { signature_key<V>; Credential }."""
        credential = struct.pack(">H", CREDENTIAL_BASIC) + vector(self.identity)
        return vector(self.public_key) + credential

    def _sign(self, label: bytes, content: bytes) -> bytes:
        sign_content = vector(b"MLS 1.0 " + label) + vector(content)
        return self._key.sign(sign_content, ec.ECDSA(hashes.SHA256()))

    def _proposal(self, group_id: bytes, epoch: int, proposal: bytes) -> SignedProposal:
        framed_content = (
            vector(group_id)
            + struct.pack(">Q", epoch)
            + bytes([SENDER_EXTERNAL])
            + struct.pack(">I", 0)
            + vector(b"")
            + bytes([CONTENT_PROPOSAL])
            + proposal
        )
        wire = struct.pack(">HH", MLS_VERSION_10, WIRE_PUBLIC_MESSAGE)
        signature = self._sign(b"FramedContentTBS", wire + framed_content)
        auth = vector(signature)
        authenticated_content = struct.pack(">H", WIRE_PUBLIC_MESSAGE) + framed_content + auth
        ref_input = vector(b"MLS 1.0 Proposal Reference") + vector(authenticated_content)
        return SignedProposal(
            message=wire + framed_content + auth, ref=hashlib.sha256(ref_input).digest()
        )

    def add_proposal(self, group_id: bytes, epoch: int, key_package: bytes) -> SignedProposal:
        return self._proposal(group_id, epoch, struct.pack(">H", PROPOSAL_ADD) + key_package)

    def remove_proposal(self, group_id: bytes, epoch: int, leaf_index: int) -> SignedProposal:
        body = struct.pack(">H", PROPOSAL_REMOVE) + struct.pack(">I", leaf_index)
        return self._proposal(group_id, epoch, body)


def proposals_append(messages: list[SignedProposal]) -> bytes:
    """Op 27 body for appending proposals."""
    return bytes([0]) + vector(b"".join(m.message for m in messages))


def proposals_revoke(refs: list[bytes]) -> bytes:
    """Op 27 body for revoking earlier proposals by reference."""
    return bytes([1]) + vector(b"".join(vector(ref) for ref in refs))


@dataclass(frozen=True)
class ParsedCommit:
    """What the fake needs from a member's Commit: where it ends and what it covers."""

    end: int
    epoch: int
    sender_leaf: int
    proposal_refs: list[bytes]
    inline_proposal_types: list[int]


def _skip_leaf_node(reader: Reader) -> None:
    reader.vector()  # encryption_key
    reader.vector()  # signature_key
    credential_type = reader.uint(2)
    if credential_type != CREDENTIAL_BASIC:
        raise MlsDecodeError("only basic credentials are expected")
    reader.vector()  # identity
    for _ in range(5):  # capabilities: versions, cipher suites, extensions, proposals, creds
        reader.vector()
    source = reader.uint(1)
    if source == 1:
        reader.take(16)  # lifetime
    elif source == 3:
        reader.vector()  # parent_hash
    reader.vector()  # extensions
    reader.vector()  # signature


def _skip_proposal(reader: Reader) -> int:
    proposal_type = reader.uint(2)
    if proposal_type == PROPOSAL_REMOVE:
        reader.take(4)
    elif proposal_type == PROPOSAL_ADD:
        raise MlsDecodeError("inline Add proposals are not expected in DAVE commits")
    else:
        raise MlsDecodeError(f"unexpected inline proposal type {proposal_type}")
    return proposal_type


def parse_commit(data: bytes) -> ParsedCommit:
    """Parse the MLSMessage Commit at the start of ``data`` (an op 28 body)."""
    reader = Reader(data)
    if reader.uint(2) != MLS_VERSION_10 or reader.uint(2) != WIRE_PUBLIC_MESSAGE:
        raise MlsDecodeError("not an MLS 1.0 PublicMessage")
    reader.vector()  # group id
    epoch = reader.uint(8)
    if reader.uint(1) != SENDER_MEMBER:
        raise MlsDecodeError("commit not sent by a member")
    sender_leaf = reader.uint(4)
    reader.vector()  # authenticated data
    if reader.uint(1) != CONTENT_COMMIT:
        raise MlsDecodeError("not a commit")
    proposals = Reader(reader.vector())
    refs: list[bytes] = []
    inline: list[int] = []
    while proposals.offset < len(proposals.data):
        kind = proposals.uint(1)
        if kind == 1:
            inline.append(_skip_proposal(proposals))
        elif kind == 2:
            refs.append(proposals.vector())
        else:
            raise MlsDecodeError("invalid ProposalOrRef")
    if reader.uint(1) == 1:  # optional<UpdatePath>
        _skip_leaf_node(reader)
        reader.vector()  # UpdatePathNode nodes<V>
    reader.vector()  # signature
    reader.vector()  # confirmation tag
    reader.vector()  # membership tag
    return ParsedCommit(
        end=reader.offset,
        epoch=epoch,
        sender_leaf=sender_leaf,
        proposal_refs=refs,
        inline_proposal_types=inline,
    )
