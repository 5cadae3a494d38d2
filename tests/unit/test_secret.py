"""Secret masks its value everywhere but reveal()."""

from __future__ import annotations

from openclaw_voice.secret import MASK, Secret


def test_secret_is_masked_in_every_rendering() -> None:
    secret = Secret("hunter2-very-secret")
    rendered = [repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % (secret,)]  # noqa: UP031
    assert all("hunter2" not in text for text in rendered)
    assert str(secret) == MASK
    assert secret.reveal() == "hunter2-very-secret"


def test_secret_equality_hash_and_truth() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert len({Secret("a"), Secret("a")}) == 1
    assert not Secret("")
    assert Secret("x")
