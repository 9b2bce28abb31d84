"""Secrets at rest: Fernet tokens under a key that never enters the database.

The key comes from the server's configuration (``saas_manager_key`` in
odoo.conf, or the ``SAAS_MANAGER_KEY`` environment variable), so a stolen
database dump does not reveal the passwords it stores.
"""

from cryptography.fernet import Fernet, InvalidToken


class VaultError(Exception):
    """Missing or wrong key, or a token that does not decrypt."""


def _fernet(key):
    if not key:
        raise VaultError("No encryption key: set saas_manager_key in the Odoo server "
                         "configuration (see CONFIGURATION.md).")
    try:
        return Fernet(key.encode() if isinstance(key, str) else key)
    except (ValueError, TypeError) as exc:
        raise VaultError("The saas_manager_key is not a valid Fernet key (32 url-safe "
                         "base64-encoded bytes).") from exc


def new_key():
    """A fresh key for the server configuration."""
    return Fernet.generate_key().decode()


def encrypt(key, plaintext):
    """Encrypt ``plaintext`` (str) into a token (str); empty stays empty."""
    if not plaintext:
        return ""
    return _fernet(key).encrypt(plaintext.encode()).decode()


def decrypt(key, token):
    """Decrypt a token made by :func:`encrypt`; empty stays empty."""
    if not token:
        return ""
    try:
        return _fernet(key).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise VaultError("A stored secret cannot be decrypted with the configured "
                         "saas_manager_key (was the key changed?).") from exc
