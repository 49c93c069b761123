"""Contact details and client addresses, protected.

- A citizen's contact (name, e-mail, phone) is stored ENCRYPTED with AES-256-GCM under a key derived
  (SHA-256) from a secret in the settings (`CITY_API_CITIZEN_CONTACT_KEY`, 32 characters or more;
  production refuses to start without one): staff with the operator role can
  read it to call back; the public never gets it, and a copy of the database without the key gives
  nothing. Each value gets a fresh 96-bit nonce; the complaint id is the associated data, so a sealed
  contact moved to another complaint does not open.
- For the abuse limits the contact and the client's IP address are kept only as a keyed HASH
  (HMAC-SHA256 under a key derived from the same secret): equal inputs can be counted, nothing can be
  read back, and without the key a guess of a phone number cannot be checked against the file.
- Rotation: a new secret seals and hashes from then on; the former ones (`old_secrets`,
  `CITY_API_CITIZEN_CONTACT_OLD_KEYS`) still open what they sealed, until `reseal` (the
  `city citizens rekey` command) has moved every contact to the new one. Address hashes made under
  a former secret are not carried over (there is nothing to re-hash them from): the per-address
  limit counts afresh for at most an hour after a rotation.
"""

import hashlib
import hmac
import json
import os
import re
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DEV_KEY_SEED = "dev-only-citizen-contact-key"  # development and tests only: production refuses it
MIN_SECRET = 32


class ContactUnreadable(Exception):
    """No key this vault holds opens the sealed contact (a secret lost, or the data altered)."""


def _keys(secret: str) -> tuple[AESGCM, bytes]:
    key = hashlib.sha256((secret or DEV_KEY_SEED).encode()).digest()
    return AESGCM(hashlib.sha256(b"seal" + key).digest()), hashlib.sha256(b"hash" + key).digest()


class ContactVault:
    def __init__(self, secret: str, production: bool = False, old_secrets: Sequence[str] = ()):
        if production and len(secret) < MIN_SECRET:
            raise ValueError(f"CITY_API_CITIZEN_CONTACT_KEY must be set in production, {MIN_SECRET} characters or "
                             "more (e.g. `openssl rand -base64 32`): it seals citizens' contact details")
        if any(len(old) < MIN_SECRET for old in old_secrets if production):
            raise ValueError(f"CITY_API_CITIZEN_CONTACT_OLD_KEYS: every former key has {MIN_SECRET} characters or more")
        self.aead, self.hash_key = _keys(secret)
        self.old = [_keys(old)[0] for old in old_secrets if old != secret]

    def seal(self, contact: dict[str, str], complaint_id: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self.aead.encrypt(nonce, json.dumps(contact).encode(), complaint_id.encode())

    def _open_with(self, sealed: bytes, complaint_id: str) -> tuple[dict[str, str], bool]:
        """The contact, and whether the current key sealed it."""
        for n, aead in enumerate((self.aead, *self.old)):
            try:
                return json.loads(aead.decrypt(sealed[:12], sealed[12:], complaint_id.encode())), n == 0
            except InvalidTag:
                continue
        raise ContactUnreadable(f"no key opens the contact of {complaint_id}")

    def open(self, sealed: bytes, complaint_id: str) -> dict[str, str]:
        return self._open_with(sealed, complaint_id)[0]

    def reseal(self, sealed: bytes, complaint_id: str) -> tuple[dict[str, str], bytes] | None:
        """(the contact, sealed under the current key), or None when the current key sealed it already."""
        contact, current = self._open_with(sealed, complaint_id)
        return None if current else (contact, self.seal(contact, complaint_id))

    def digest(self, value: str) -> str:
        return hmac.new(self.hash_key, value.encode(), hashlib.sha256).hexdigest()


def normal_contact(email: str, phone: str) -> str:
    """One form per person for counting: e-mail lower-cased, phone digits only (Indonesian 0812 = +62 812)."""
    digits = re.sub(r"\D", "", phone)
    if digits.startswith("62"):
        digits = "0" + digits[2:]
    return (email.strip().lower() or "") + "|" + digits

