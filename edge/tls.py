# TLS for the device's MQTT link: a client context that pins the city's CA
# from a file on flash and requires the server's certificate (chain to that
# CA, validity dates, and the server name checked by the caller's
# server_hostname), and a short stable reason for a failed handshake that the
# agent reports in its health message.
#
# Runs under MicroPython (mbedTLS `ssl` module) and CPython (OpenSSL). The CA
# file may be DER or PEM; MicroPython's mbedTLS build reads only DER, so a PEM
# file is converted here (a few hundred bytes, once per connect).

import ssl

try:
    from binascii import a2b_base64
except ImportError:  # very old MicroPython ports
    from ubinascii import a2b_base64

# Reasons a handshake failed, as reported in the status message's "link_error".
TLS_UNKNOWN_CA = "tls_unknown_ca"  # the server's certificate is not signed by the pinned CA
TLS_EXPIRED = "tls_expired"  # the certificate's validity dates do not include now
TLS_BAD_HOST = "tls_bad_host"  # the certificate does not name the server we asked for
TLS_HANDSHAKE = "tls_handshake"  # anything else (protocol, cipher, connection cut)
TLS_NO_CA = "tls_no_ca"  # the CA file is missing or unreadable on the flash

# Substrings of mbedTLS and OpenSSL messages, lower case, checked in order.
_REASONS = (
    ("expired", TLS_EXPIRED),
    ("not yet valid", TLS_EXPIRED),
    ("future", TLS_EXPIRED),
    ("common name", TLS_BAD_HOST),
    ("expected cn", TLS_BAD_HOST),
    ("hostname mismatch", TLS_BAD_HOST),
    ("ip address mismatch", TLS_BAD_HOST),
    ("not correctly signed", TLS_UNKNOWN_CA),
    ("local issuer", TLS_UNKNOWN_CA),
    ("self-signed", TLS_UNKNOWN_CA),
    ("self signed", TLS_UNKNOWN_CA),
    ("unknown ca", TLS_UNKNOWN_CA),
)


class TLSConfigError(OSError):
    """The device's TLS settings cannot work (no CA file): a connect is pointless."""

    reason = TLS_NO_CA


def read_ca(path):
    """The CA certificate at `path` on the flash, as DER bytes (DER or PEM file)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise TLSConfigError("tls: cannot read the CA file " + path + ": " + str(exc))
    if data.startswith(b"-----BEGIN"):
        return pem_to_der(data)
    return data


def pem_to_der(pem):
    """The first certificate of a PEM text, as DER."""
    lines = pem.split(b"\n")
    body = []
    inside = False
    for line in lines:
        line = line.strip()
        if line.startswith(b"-----BEGIN"):
            inside = True
        elif line.startswith(b"-----END"):
            break
        elif inside and line:
            body.append(line)
    if not body:
        raise TLSConfigError("tls: no certificate in the PEM file")
    return a2b_base64(b"".join(body))


def client_context(ca_path):
    """A TLS client context trusting only the CA at ca_path, certificate required.

    MicroPython's PROTOCOL_TLS_CLIENT context starts with CERT_NONE: set it."""
    ca = read_ca(ca_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=ca)
    return context


def failure_reason(exc):
    """A stable short code for a failed handshake (see the TLS_* names)."""
    text = str(exc).lower()
    for needle, reason in _REASONS:
        if needle in text:
            return reason
    return TLS_HANDSHAKE
