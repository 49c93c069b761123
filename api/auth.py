"""API keys and roles.

A key looks like `city_<key id>_<secret>`; only a SHA-256 of the secret is
stored (the secret is 192 random bits, so a slow hash would add nothing but
latency). Clients send `Authorization: Bearer <key>`.

Every route names the roles it accepts through a dependency; admin is
accepted everywhere. Use the aliases in route signatures:

    @router.get("/things")
    def things(user: AnyRole) -> ...
    @router.post("/things")
    def make(user: RequireRole("technician", "engineer")) -> ...
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from api.db import ApiDb, now_ms

# Staff roles see the city's data; a `hospital` key belongs to one hospital and may only update that
# hospital's wards and roster (api/routes/hospitals.py), nothing else.
STAFF_ROLES = ("technician", "engineer", "operator", "admin")
ROLES = (*STAFF_ROLES, "hospital")
Role = Literal["technician", "engineer", "operator", "admin"]  # what POST /keys makes: hospital keys come from
# POST /hospitals/{id}/keys, bound to their hospital
KEY_PREFIX = "city"
# ASCII on purpose: \w means more in Python than in the ECMA regex of the OpenAPI schema
KEY_NAME_PATTERN = r"^[A-Za-z0-9_.@-][A-Za-z0-9_ .@-]*$"

SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
"""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name (shown in the audit trail) and role."""

    key_id: str
    name: str
    role: str


class ApiKeyPublic(BaseModel):
    id: str
    name: str
    role: str
    created_ms: int
    revoked_ms: int | None = None


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # as api.params.STRICT_BODY

    name: str = Field(min_length=1, max_length=64, pattern=KEY_NAME_PATTERN,
                      description="a person or service; shown in the audit trail: ASCII letters, digits, "
                                  "space and . @ _ -, not starting with a space")
    role: Role


class ApiKeyRole(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Role


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="the key itself: shown once, store it now")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    def __init__(self, db: ApiDb):
        self.db = db
        db.script(SCHEMA)

    def create(self, name: str, role: str) -> ApiKeyCreated:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        key_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(24)
        created = now_ms()
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO api_keys (id, name, role, secret_sha256, created_ms) VALUES (?, ?, ?, ?, ?)",
                         (key_id, name, role, _digest(secret), created))
        return ApiKeyCreated(id=key_id, name=name, role=role, created_ms=created,
                             key=f"{KEY_PREFIX}_{key_id}_{secret}")

    def list(self, limit: int = 100, offset: int = 0) -> tuple[list[ApiKeyPublic], int]:
        total = self.db.query("SELECT count(*) FROM api_keys")[0][0]
        rows = self.db.query("SELECT id, name, role, created_ms, revoked_ms FROM api_keys ORDER BY created_ms, id"
                             " LIMIT ? OFFSET ?", (limit, offset))
        return [ApiKeyPublic(**dict(row)) for row in rows], total

    def revoke(self, key_id: str) -> bool:
        """True when a live key was revoked."""
        with self.db.transaction() as conn:
            cursor = conn.execute("UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL",
                                  (now_ms(), key_id))
        return cursor.rowcount == 1

    def set_role(self, key_id: str, role: str) -> ApiKeyPublic | None:
        """Give a live key another role (its open streams end); None when there is no such live key."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        with self.db.transaction() as conn:
            cursor = conn.execute("UPDATE api_keys SET role = ? WHERE id = ? AND revoked_ms IS NULL", (role, key_id))
        if cursor.rowcount != 1:
            return None
        row = self.db.query("SELECT id, name, role, created_ms, revoked_ms FROM api_keys WHERE id = ?", (key_id,))[0]
        return ApiKeyPublic(**dict(row))

    def live_roles(self) -> dict[str, str]:
        """Every live key's role by key id: one query, for re-checking open streams."""
        rows = self.db.query("SELECT id, role FROM api_keys WHERE revoked_ms IS NULL")
        return {row["id"]: row["role"] for row in rows}

    def verify(self, key: str) -> Principal | None:
        """The key's principal, or None for a malformed, unknown or revoked key."""
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX or len(key) > 200:
            return None
        rows = self.db.query("SELECT id, name, role, secret_sha256 FROM api_keys WHERE id = ? AND revoked_ms IS NULL",
                             (parts[1],))
        if not rows or not hmac.compare_digest(rows[0]["secret_sha256"], _digest(parts[2])):
            return None
        return Principal(rows[0]["id"], rows[0]["name"], rows[0]["role"])


_bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer city_<id>_<secret>`")


def current_principal(request: Request,
                      credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    """The caller, or a 401 that says what is wrong."""
    if credentials is None:
        raise HTTPException(401, "missing API key: send `Authorization: Bearer <key>`",
                            headers={"WWW-Authenticate": "Bearer"})
    principal = request.app.state.services.keys.verify(credentials.credentials)
    if principal is None:
        raise HTTPException(401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    return principal


def require_role(*roles: str):
    """A dependency that lets in the given roles (and admin), else 403."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    allowed = set(roles) | {"admin"}

    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in allowed:
            raise HTTPException(403, f"this needs the role {' or '.join(sorted(allowed))}; "
                                     f"the key {principal.name!r} has the role {principal.role}")
        return principal

    check.__name__ = "require_" + "_or_".join(sorted(allowed))
    return check


def RequireRole(*roles: str) -> Any:  # noqa: N802 - reads like a type in a signature
    """`user: RequireRole("operator")` in a route signature."""
    return Annotated[Principal, Depends(require_role(*roles))]


AnyRole = RequireRole(*STAFF_ROLES)
Technician = RequireRole("technician")
Engineer = RequireRole("engineer")
Operator = RequireRole("operator")
Admin = RequireRole("admin")
