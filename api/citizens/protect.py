"""Contact details and client addresses, protected.

- A citizen's contact (name, e-mail, phone) is stored ENCRYPTED with AES-256-GCM under a key from
  the settings (`CITY_API_CITIZEN_CONTACT_KEY`, 32 bytes, base64): staff with the operator role can
  read it to call back; the public never gets it, and a copy of the database without the key gives
  nothing. Each value gets a fresh 96-bit nonce; the complaint id is the associated data, so a sealed
  contact moved to another complaint does not open.
- For the abuse limits the contact and the client's IP address are kept only as a keyed HASH
  (HMAC-SHA256 under a key derived from the same secret): equal inputs can be counted, nothing can be
  read back, and without the key a guess of a phone number cannot be checked against the file.
"""

import base64
import hashlib
import hmac
import json
import os
import re

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DEV_KEY_SEED = b"dev-only-citizen-contact-key"  # development and tests only: production refuses it


class ContactVault:
    def __init__(self, key_b64: str):
        key = base64.urlsafe_b64decode(key_b64 + "=" * (-len(key_b64) % 4)) if key_b64 else \
            hashlib.sha256(DEV_KEY_SEED).digest()
        if len(key) != 32:
            raise ValueError("CITY_API_CITIZEN_CONTACT_KEY must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)")
        self.aead = AESGCM(hashlib.sha256(b"seal" + key).digest())
        self.hash_key = hashlib.sha256(b"hash" + key).digest()

    def seal(self, contact: dict[str, str], complaint_id: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self.aead.encrypt(nonce, json.dumps(contact).encode(), complaint_id.encode())

    def open(self, sealed: bytes, complaint_id: str) -> dict[str, str]:
        return json.loads(self.aead.decrypt(sealed[:12], sealed[12:], complaint_id.encode()))

    def digest(self, value: str) -> str:
        return hmac.new(self.hash_key, value.encode(), hashlib.sha256).hexdigest()


def normal_contact(email: str, phone: str) -> str:
    """One form per person for counting: e-mail lower-cased, phone digits only (Indonesian 0812 = +62 812)."""
    digits = re.sub(r"\D", "", phone)
    if digits.startswith("62"):
        digits = "0" + digits[2:]
    return (email.strip().lower() or "") + "|" + digits


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()
