"""The broker's security and configuration: password hashes in Mosquitto's
format, the dynamic-security roles that pin each device to its own topics (and
refuse anything else at SUBSCRIBE time), and mosquitto.conf.

The same functions write the files the tests run with and the files that are
deployed, so the rights proven in the tests are the rights in production.
"""

import base64
import grp
import hashlib
import hmac
import json
import os
import pwd
import secrets
import stat
from pathlib import Path

from edge import contract

PBKDF2_ITERATIONS = 101  # Mosquitto 2.0's own default; device secrets are 192-bit random, so this is enough
SERVICES = ("ingest", "analytics", "api")
MAX_SERVICE_INSTANCES = 8


class BrokerConfigError(RuntimeError):
    """The broker could not keep its promises with this setup."""


def new_secret() -> str:
    """A device or service secret: 192 random bits, URL-safe."""
    return secrets.token_urlsafe(24)


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    """PBKDF2-SHA512 in Mosquitto's `$7$` password-file format."""
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
        if kind != "7":
            return False
        computed = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations))
        return hmac.compare_digest(base64.b64encode(computed).decode(), digest)
    except (ValueError, TypeError):
        return False


def service_user(service: str, instance: int = 0) -> str:
    """The MQTT username (and client id) of one service instance, e.g. svc-ingest-0."""
    return f"svc-{service}-{instance}"


# ---------------------------------------------------------------- dynamic security
# Mosquitto's ACL file grants every SUBSCRIBE and checks rights only at delivery: a
# device that joins a shared group ($share/ingest/...) stays in the round-robin and
# its share of the readings is silently dropped. The dynamic-security plugin (shipped
# with Mosquitto 2.0) checks a SUBSCRIBE against the client's roles and refuses it
# in the SUBACK. Its 2.0 ACLs have no %u, so every device has a role of its own.

DYNSEC_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"  # Debian's mosquitto 2.0
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = CONTROL_TOPIC + "/response"
INGEST_SHARE_GROUP = "ingest"
DEFAULT_ANALYTICS_GROUP = "analytics"
DEVICE_ADMIN_ROLE = "broker-admin"  # never "device-...": that is the name space of the devices' roles


def _acl(kind: str, topic: str) -> dict:
    return {"acltype": kind, "topic": topic, "allow": True}


def _read(topic: str, share_group: str = "") -> list[dict]:
    """Subscribe to (and receive) a topic filter, plainly or through one shared group."""
    acls = [_acl("subscribePattern", topic), _acl("publishClientReceive", topic)]
    if share_group:
        acls.append(_acl("subscribePattern", f"$share/{share_group}/{topic}"))
    return acls


def service_roles(analytics_group: str = DEFAULT_ANALYTICS_GROUP) -> dict[str, list[dict]]:
    """role name -> ACLs of each service, and of the device admin (the API's provisioning)."""
    if analytics_group == INGEST_SHARE_GROUP:
        raise BrokerConfigError(f"the analytics share group cannot be {INGEST_SHARE_GROUP!r}: it would take "
                                "readings from the ingest workers")
    root, dev = contract.ROOT, contract.DEVICE_PREFIX
    alerts = f"{root}/alerts/#"
    return {
        "ingest": _read(contract.TELEMETRY_SUB, INGEST_SHARE_GROUP) + _read(contract.STATUS_SUB, INGEST_SHARE_GROUP),
        "analytics": _read(contract.TELEMETRY_SUB, analytics_group or DEFAULT_ANALYTICS_GROUP)
        + _read(alerts) + [_acl("publishClientSend", alerts)],
        "api": [_acl("publishClientSend", dev + "+/config")] + _read(contract.STATUS_SUB)
        + _read(contract.TELEMETRY_SUB) + _read(alerts),
        DEVICE_ADMIN_ROLE: [_acl("publishClientSend", CONTROL_TOPIC), _acl("subscribeLiteral", RESPONSE_TOPIC),
                            _acl("publishClientReceive", RESPONSE_TOPIC)],
    }


def device_role_name(device_id: str) -> str:
    """The device's own role. Refuses what is no device id, so a command built for a device can
    never touch a service account or a service role."""
    if not contract.valid_device_id(device_id) or service_of(device_id) or device_id.startswith("svc-"):
        raise BrokerConfigError(f"not a device id: {device_id[:40]!r}")
    return f"device-{device_id}"


def device_acls(device_id: str) -> list[dict]:
    """A device's rights: publish its telemetry and status, subscribe to its config. Nothing else."""
    return [_acl("publishClientSend", contract.telemetry_topic(device_id)),
            _acl("publishClientSend", contract.status_topic(device_id)),
            _acl("subscribeLiteral", contract.config_topic(device_id)),
            _acl("publishClientReceive", contract.config_topic(device_id))]


def _credential(hashed: str) -> dict:
    """A `$7$` hash (hash_password) as dynamic security stores it: the same PBKDF2-SHA512."""
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
        if kind != "7":
            raise ValueError(kind)
        return {"password": digest, "salt": salt, "iterations": int(iterations)}
    except ValueError as exc:
        raise BrokerConfigError(f"not a PBKDF2-SHA512 password hash: {hashed[:12]!r}...") from exc


def service_of(username: str) -> str:
    """svc-ingest-3 -> ingest; '' for a username that is no service account."""
    parts = username.split("-")
    return parts[1] if len(parts) == 3 and parts[0] == "svc" and parts[1] in SERVICES else ""


def dynsec_config(services: dict[str, str], devices: dict[str, str],
                  analytics_group: str = DEFAULT_ANALYTICS_GROUP) -> dict:
    """The plugin's whole configuration: service accounts (username -> hash) with their
    service's role, devices (id -> hash) with a role each. Deny by default."""
    clients, roles = [], [{"rolename": name, "acls": acls} for name, acls in service_roles(analytics_group).items()]
    for user, hashed in sorted(services.items()):
        service = service_of(user)
        if not service:
            raise BrokerConfigError(f"{user!r} is not a service account (svc-<service>-<n>)")
        names = [service] + ([DEVICE_ADMIN_ROLE] if service == "api" else [])
        clients.append({"username": user, "roles": [{"rolename": n} for n in names]} | _credential(hashed))
    for device_id, hashed in sorted(devices.items()):
        role = device_role_name(device_id)
        clients.append({"username": device_id, "roles": [{"rolename": role}]} | _credential(hashed))
        roles.append({"rolename": role, "acls": device_acls(device_id)})
    return {"defaultACLAccess": {"publishClientSend": False, "publishClientReceive": False,
                                 "subscribe": False, "unsubscribe": True},
            "clients": clients, "groups": [], "roles": roles}


def write_dynsec(path: Path | str, services: dict[str, str], devices: dict[str, str],
                 analytics_group: str = DEFAULT_ANALYTICS_GROUP) -> None:
    """Atomically write the plugin's file (read by Mosquitto at start only), owner-readable only."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(dynsec_config(services, devices, analytics_group), indent=1))
    os.chmod(tmp, 0o600)
    tmp.replace(target)


def add_device_commands(device_id: str, password: str) -> list[dict]:
    """Control commands that (re)create a device with this password; any old entry goes first."""
    role = device_role_name(device_id)
    return remove_device_commands(device_id) + [
        {"command": "createRole", "rolename": role, "acls": device_acls(device_id)},
        {"command": "createClient", "username": device_id, "password": password, "roles": [{"rolename": role}]}]


def remove_device_commands(device_id: str) -> list[dict]:
    """Delete a device's client (which disconnects it) and its role; "not found" is fine."""
    role = device_role_name(device_id)
    return [{"command": "deleteClient", "username": device_id}, {"command": "deleteRole", "rolename": role}]


def password_command(device_id: str, password: str) -> dict:
    """Set a device's password; the plugin disconnects its live session at once."""
    device_role_name(device_id)  # a device's, never a service account's
    return {"command": "setClientPassword", "username": device_id, "password": password}


# Queue sizing. An InfluxDB outage is absorbed by the ingest workers' on-disk
# spool, never by the broker. The broker's per-client queue only has to cover
# the workers themselves being away (a crash, a deploy), and Mosquitto drops
# QoS 1 messages past max_queued_messages with nothing but a log line. We
# promise 15 minutes of worker outage for a fleet of 1,000 devices sending one
# message every 10 s (100 msg/s, 90,000 messages), with some headroom:
WORKER_OUTAGE_S = 15 * 60
FLEET_MESSAGES_PER_S = 100
MAX_QUEUED_MESSAGES = 100_000
# Mosquitto snapshots its persistence every autosave_interval (1,800 s by
# default): a `kill -9` of the broker loses what was queued since. Short here.
AUTOSAVE_INTERVAL_S = 10


def queue_for(outage_s: float, messages_per_s: float, headroom: float = 1.1) -> int:
    """max_queued_messages that holds `outage_s` of a fleet's messages for an absent worker."""
    return int(outage_s * messages_per_s * headroom)


def check_persistence_dir(path: Path | str, user: str | None = None) -> None:
    """Fail loudly when the broker (running as `user`) cannot write its persistence
    folder: Mosquitto itself only logs it and runs on without durability."""
    folder = Path(path)
    if not folder.is_dir():
        raise BrokerConfigError(f"persistence folder {folder} does not exist")
    if user is None:
        if not os.access(folder, os.W_OK | os.X_OK):
            raise BrokerConfigError(f"persistence folder {folder} is not writable by this user")
        return
    try:
        account = pwd.getpwnam(user)
    except KeyError as exc:
        raise BrokerConfigError(f"the broker user {user!r} does not exist") from exc
    info = folder.stat()
    groups = {account.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    writable = (account.pw_uid == 0
                or (info.st_uid == account.pw_uid and info.st_mode & stat.S_IWUSR and info.st_mode & stat.S_IXUSR)
                or (info.st_gid in groups and info.st_mode & stat.S_IWGRP and info.st_mode & stat.S_IXGRP)
                or (info.st_mode & stat.S_IWOTH and info.st_mode & stat.S_IXOTH))
    if not writable:
        raise BrokerConfigError(f"the broker user {user!r} cannot write its persistence folder {folder} "
                                f"(owner uid {info.st_uid}, mode {oct(info.st_mode & 0o777)}): chown it to {user}")


def mosquitto_conf(
    port: int,
    persistence_dir: Path | str,
    dynsec_file: Path | str,
    bind: str = "127.0.0.1",
    run_as: str | None = None,
    max_queued_messages: int = MAX_QUEUED_MESSAGES,
    autosave_interval_s: int = AUTOSAVE_INTERVAL_S,
    plugin: str = DYNSEC_PLUGIN,
    services_only: tuple[Path | str, Path | str] | None = None,
) -> str:
    """mosquitto.conf for the platform: no anonymous access, dynamic security, durable sessions.

    services_only=(password file, ACL file): production's layout. The plain listener
    admits the service accounts of those files only, so a device's credentials are
    refused there; dynamic security (devices, and the API's device admin) moves onto
    the TLS listener (tls_listener_conf with per_listener=True). Mosquitto 2.0 loads the
    plugin once per process with one state, so it cannot serve two listeners with
    different users: hence plain files for the services on the plain listener."""
    security = [f"plugin {plugin}", f"plugin_opt_config_file {dynsec_file}"]
    plain = [f"listener {port} {bind}" if bind else f"listener {port}", "use_username_as_clientid true"]
    if services_only:
        passwd, acl = services_only
        security = []
        plain += ["allow_anonymous false", f"password_file {passwd}", f"acl_file {acl}"]
    lines = [
        "# Generated by telemetry_shared.broker.",
        f"per_listener_settings {'true' if services_only else 'false'}",
        "allow_anonymous false",
        *security,
        "persistence true",
        f"persistence_location {str(persistence_dir).rstrip('/')}/",
        f"autosave_interval {autosave_interval_s}",
        "autosave_on_changes false",
        "persistent_client_expiration 14d",
        f"max_queued_messages {max_queued_messages}",
        "max_queued_bytes 0",
        "max_inflight_messages 100",
        f"message_size_limit {contract.MAX_PAYLOAD_BYTES * 4}",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages false",
        *(["# Services only: a device's credentials are refused here (devices log in over TLS)"]
          if services_only else []),
        *plain,
        "",
    ]
    if run_as:
        lines.insert(1, f"user {run_as}")
    return "\n".join(lines)


def tls_listener_conf(port: int, cert: Path | str, key: Path | str, bind: str = "",
                      dynsec: tuple[str, Path | str] | None = None) -> str:
    """A TLS listener (TLS 1.2 or newer) with client ids pinned to usernames.

    dynsec=(plugin, its file): the listener carries dynamic security itself (production,
    per_listener_settings true); without it, it shares the global users and rights."""
    lines = [f"listener {port} {bind}".rstrip(), f"certfile {cert}", f"keyfile {key}", "tls_version tlsv1.2",
             "use_username_as_clientid true"]  # per listener: without it a TLS client could take another's id
    if dynsec:
        lines += ["allow_anonymous false", f"plugin {dynsec[0]}", f"plugin_opt_config_file {dynsec[1]}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- the services' plain listener (production)
_READS = ("subscribePattern", "subscribeLiteral", "publishClientReceive")


def services_acl(users: list[str], analytics_group: str = DEFAULT_ANALYTICS_GROUP) -> str:
    """Mosquitto's ACL file for the plain listener: each service account gets its service's
    role (service_roles), as read and write topic lines; nothing for anyone else. Shared
    subscriptions are checked at delivery against the message's topic, so the plain topic
    line covers $share/<group>/<topic> too. The device-admin role is not here: the plugin
    takes its commands on the TLS listener only."""
    roles = service_roles(analytics_group)
    blocks = []
    for user in sorted(users):
        service = service_of(user)
        if not service:
            raise BrokerConfigError(f"{user!r} is not a service account (svc-<service>-<n>)")
        access: dict[str, set[str]] = {}
        for acl in roles[service]:
            if acl["topic"].startswith("$share/"):
                continue
            kind = "read" if acl["acltype"] in _READS else "write"
            access.setdefault(acl["topic"], set()).add(kind)
        lines = [f"user {user}"]
        for topic, kinds in sorted(access.items()):
            lines.append(f"topic {'readwrite' if len(kinds) == 2 else kinds.pop()} {topic}")
        blocks.append("\n".join(lines))
    return "# Generated by telemetry_shared.broker: the service accounts' rights on the plain listener.\n" + \
        "\n\n".join(blocks) + "\n"


def services_password_file(services: dict[str, str]) -> str:
    """Mosquitto's password file (username:$7$... hash) of the service accounts only."""
    for user, hashed in services.items():
        if not service_of(user):
            raise BrokerConfigError(f"{user!r} is not a service account (svc-<service>-<n>)")
        _credential(hashed)  # a PBKDF2-SHA512 hash, or refuse
    return "".join(f"{user}:{hashed}\n" for user, hashed in sorted(services.items()))


def write_private(path: Path | str, text: str) -> None:
    """Write atomically, owner-readable only (password hashes)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o600)
    tmp.replace(target)
