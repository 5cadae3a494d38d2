"""Transport decryption of Discord voice packets (``aead_xchacha20_poly1305_rtpsize``).

discord.py negotiates only this AEAD mode among the ones Discord offers today (its
``supported_modes``), so ``aead_aes256_gcm_rtpsize`` can never be chosen and is not
implemented. In the "rtpsize" modes the RTP header plus the 4-byte extension preamble are
authenticated (AAD) but not encrypted; the 4-byte nonce is appended to the packet; the
plaintext starts with the extension body and ends with RTP padding.
"""

from __future__ import annotations

import struct
from typing import Final

from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt
from nacl.exceptions import CryptoError

from openclaw_voice.discord.rtp import RtpError, RtpHeader, parse_header

XCHACHA_RTPSIZE: Final = "aead_xchacha20_poly1305_rtpsize"
SUPPORTED_MODES: Final = (XCHACHA_RTPSIZE,)
_NONCE_LENGTH = 4
_TAG_LENGTH = 16


class DecryptError(ValueError):
    """The packet did not authenticate or its layout is inconsistent."""


class TransportDecryptor:
    """Decrypts one connection's packets with its session key."""

    def __init__(self, mode: str, secret_key: bytes) -> None:
        if mode not in SUPPORTED_MODES:
            raise ValueError(f"unsupported voice encryption mode {mode!r}")
        if len(secret_key) != 32:
            raise ValueError("the voice secret key must be 32 bytes")
        self.mode = mode
        self._key = secret_key

    def decrypt(self, packet: bytes) -> tuple[RtpHeader, bytes]:
        """Return the header and the media frame (extension body and padding removed)."""
        header = parse_header(packet)
        aad_length = header.length + (4 if header.extension else 0)
        if len(packet) < aad_length + _TAG_LENGTH + _NONCE_LENGTH:
            raise RtpError("too short for an rtpsize AEAD packet")
        nonce = packet[-_NONCE_LENGTH:] + bytes(24 - _NONCE_LENGTH)
        try:
            plaintext = crypto_aead_xchacha20poly1305_ietf_decrypt(
                packet[aad_length:-_NONCE_LENGTH], packet[:aad_length], nonce, self._key
            )
        except CryptoError:
            raise DecryptError("packet failed authentication") from None
        start = 0
        if header.extension:
            (words,) = struct.unpack_from(">H", packet, header.length + 2)
            start = 4 * words
        end = len(plaintext)
        if header.padding:
            if not plaintext or plaintext[-1] == 0:
                raise RtpError("padding bit set without a valid pad length")
            end -= plaintext[-1]
        if end < start:
            raise RtpError("extension and padding longer than the payload")
        return header, plaintext[start:end]
