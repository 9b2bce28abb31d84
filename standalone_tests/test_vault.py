"""Secrets at rest (engine.vault)."""

import pytest

from engine import vault


def test_round_trip_and_no_plaintext():
    key = vault.new_key()
    token = vault.encrypt(key, "s3cret-pass")
    assert "s3cret" not in token
    assert vault.decrypt(key, token) == "s3cret-pass"
    assert vault.encrypt(key, "s3cret-pass") != token  # random IV: equal secrets differ


def test_empty_stays_empty():
    assert vault.encrypt("", "") == ""
    assert vault.decrypt("", "") == ""


def test_missing_key():
    with pytest.raises(vault.VaultError, match="saas_manager_key"):
        vault.encrypt("", "x")


def test_invalid_key():
    with pytest.raises(vault.VaultError, match="not a valid Fernet key"):
        vault.encrypt("short", "x")


def test_wrong_key():
    token = vault.encrypt(vault.new_key(), "x")
    with pytest.raises(vault.VaultError, match="cannot be decrypted"):
        vault.decrypt(vault.new_key(), token)
