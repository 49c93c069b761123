"""Logging for the server processes, with no secret in any line.

Two layers. The HTTP client libraries (httpx, httpcore, urllib3, influxdb-client)
log every request with its full URL at INFO or DEBUG: they are held at WARNING,
so a URL is never logged in passing. And every line that reaches a handler is
checked against the secrets this process was configured with (passwords,
tokens, webhook URLs' queries and signing secrets): any it contains is
replaced by `***` before it is written, tracebacks included. A secret that
slips into a message by a path nobody thought of is masked all the same.
"""

import logging
from urllib.parse import urlsplit

from telemetry_shared.settings import Settings

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
CHATTY = ("httpx", "httpcore", "urllib3", "influxdb_client", "hpack")
MASK = "***"
MIN_SECRET_LEN = 4  # shorter values ("", "x") would mask ordinary words


def secrets_of(settings: Settings) -> set[str]:
    """The values in these settings that must never be written to a log."""
    found = {settings.mqtt_password, settings.influx_password, settings.influx_token, settings.api_token,
             settings.grafana_token, settings.grafana_password}
    for rule in settings.api_notify_rules:
        if not isinstance(rule, dict):
            continue
        found.add(str(rule.get("secret", "")))
        webhook = str(rule.get("webhook", ""))
        if webhook:
            parts = urlsplit(webhook)
            found |= {parts.query, parts.password or "", webhook}
            found |= {value for pair in parts.query.split("&") for value in pair.split("=")[1:]}
    return {value for value in found if len(value) >= MIN_SECRET_LEN}


class SecretFilter(logging.Filter):
    """Replaces every known secret in a record (message, arguments, traceback) by ***."""

    def __init__(self, secrets: set[str]):
        super().__init__()
        # longest first: a secret that contains another is masked whole
        self.secrets = sorted(secrets, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format: logging itself reports it, with nothing of ours to mask
            return True
        record.msg = self.mask(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


def setup_logging(settings: Settings, level: int = logging.INFO) -> None:
    """Log to stderr at `level`, the HTTP clients at WARNING, and this process's secrets masked."""
    logging.basicConfig(level=level, format=FORMAT)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    secret_filter = SecretFilter(secrets_of(settings))
    for handler in logging.getLogger().handlers:
        handler.addFilter(secret_filter)
