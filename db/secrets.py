"""Endpoint secrets (an OAuth client secret or a signing secret) are stored only
encrypted, with a key from the settings (`KETENPOORT_PUSH_SECRET_KEY`), and are
never returned by the API or written to a log or the audit trail.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`, already installed for
the tokens) authenticates what it decrypts: a secret encrypted with another key
fails loudly instead of yielding garbage. The Fernet key is derived from the
setting with SHA-256, so any long random string will do.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


class SecretUnreadable(Exception):
    """The stored secret cannot be decrypted with the configured key."""


class SecretBox:
    def __init__(self, key: str) -> None:
        derived = hashlib.sha256(key.encode("utf-8")).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError) as error:
            raise SecretUnreadable(
                "the endpoint's secret cannot be decrypted with KETENPOORT_PUSH_SECRET_KEY"
            ) from error
