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
"""

import hashlib
import hmac
import json
import os
import re

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DEV_KEY_SEED = "dev-only-citizen-contact-key"  # development and tests only: production refuses it
MIN_SECRET = 32


class ContactVault:
    def __init__(self, secret: str, production: bool = False):
        if production and len(secret) < MIN_SECRET:
            raise ValueError(f"CITY_API_CITIZEN_CONTACT_KEY must be set in production, {MIN_SECRET} characters or "
                             "more (e.g. `openssl rand -base64 32`): it seals citizens' contact details")
        key = hashlib.sha256((secret or DEV_KEY_SEED).encode()).digest()
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

