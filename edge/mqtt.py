# A small MQTT 3.1.1 client for the device (QoS 0 and 1, keepalive, last
# will, username and password, TLS). Its methods map one to one onto protocol
# operations; reconnecting and retrying live in the agent, not here.
#
# Runs under MicroPython and CPython: only `socket`, `select`, `struct`-free
# byte handling and edge.clock. Reads are exact (partial reads are looped) and
# a broken connection raises OSError, which the caller treats as "reconnect".
#
# TLS as in micropython-lib's umqtt.simple: pass an SSL context (see
# edge.tls.client_context) and the client wraps its socket with it, checking
# the server's name against the certificate. A failed handshake raises
# TLSError whose `reason` says why (edge.tls.TLS_*).
#
# The packet encoders (encode_string, remaining_length, connect_body) are
# public: the simulator's asyncio client speaks the same bytes with them.

import select
import socket

from edge.clock import ticks_add, ticks_diff, ticks_ms

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82
SUBACK = 0x90
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0

CONNACK_ERRORS = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad username or password",
    5: "not authorised",
}


MAX_PACKET_BYTES = 32768  # larger packets are read and dropped: a device has little RAM


class MQTTException(OSError):
    pass


class TLSError(MQTTException):
    """The TLS handshake failed; `reason` is one of edge.tls.TLS_*."""

    def __init__(self, reason, detail):
        super().__init__("tls: " + reason + ": " + detail)
        self.reason = reason


def encode_string(text):
    """An MQTT UTF-8 string: two length bytes, then the bytes."""
    data = text.encode() if type(text) is str else bytes(text)
    return bytes((len(data) >> 8, len(data) & 0xFF)) + data


def remaining_length(n):
    """The variable-length "remaining length" of a fixed header."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def connect_body(client_id, keepalive_s, clean_session, will=None, user=None, password=None):
    """The body of a CONNECT packet (MQTT 3.1.1); will is (topic, payload, retain, qos).

    Shared with the simulator's asyncio client, so both speak the same bytes."""
    flags = 0x02 if clean_session else 0
    payload = encode_string(client_id)
    if will:
        topic, message, retain, qos = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += encode_string(topic) + encode_string(message)
    if user is not None:
        flags |= 0x80
        payload += encode_string(user)
        if password is not None:
            flags |= 0x40
            payload += encode_string(password)
    return b"\x00\x04MQTT\x04" + bytes((flags, keepalive_s >> 8, keepalive_s & 0xFF)) + payload


class MQTTClient:
    def __init__(self, client_id, server, port=1883, user=None, password=None, keepalive_s=60, timeout_s=10,
                 ssl=None, server_hostname=None):
        """ssl: an SSL context (or None for plain MQTT); server_hostname: the name the
        server's certificate must carry (default: server)."""
        self.client_id = client_id
        self.server = server
        self.port = port
        self.ssl = ssl
        self.server_hostname = server_hostname or server
        self.user = user
        self.password = password
        self.keepalive_s = keepalive_s
        self.timeout_s = timeout_s
        self.sock = None
        self.poller = None
        self.pid = 0
        self.callback = None
        self.will = None
        self.last_io_ms = 0

    # ------------------------------------------------------------ plumbing

    def _send(self, data):
        view = memoryview(data)
        while len(view):
            sent = self.sock.send(view)
            if sent is None or sent <= 0:
                raise OSError("mqtt: connection closed while sending")
            view = view[sent:]
        self.last_io_ms = ticks_ms()

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise OSError("mqtt: connection closed by broker")
            buf.extend(chunk)
        return bytes(buf)

    def _read_packet(self):
        header = self._recv_exact(1)[0]
        length, shift = 0, 0
        while True:
            byte = self._recv_exact(1)[0]
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MQTTException("mqtt: bad remaining length")
        if length > MAX_PACKET_BYTES:
            self._discard(length)  # e.g. a hostile retained config: skip it, keep the connection
            return 0, b""
        body = self._recv_exact(length) if length else b""
        return header, body

    def _discard(self, n):
        while n > 0:
            n -= len(self._recv_exact(min(n, 512)))

    def _packet(self, header, body, payload=None):
        """One packet; a large payload is sent from its own buffer, not copied onto the header."""
        size = len(body) + (len(payload) if payload is not None else 0)
        self._send(bytes((header,)) + remaining_length(size) + body)
        if payload is not None and len(payload):
            self._send(payload)

    def _next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    def _readable(self, timeout_ms):
        pending = getattr(self.sock, "pending", None)  # CPython's ssl buffers records the poller cannot see
        if pending is not None and pending():
            return True
        return bool(self.poller.poll(timeout_ms))

    # ------------------------------------------------------------ protocol

    def set_callback(self, callback):
        """callback(topic: bytes, payload: bytes) for every message received."""
        self.callback = callback

    def set_last_will(self, topic, payload, retain=False, qos=0):
        self.will = (topic, payload, retain, qos)

    def connect(self, clean_session=True):
        """Open the connection; returns True when the broker kept our session."""
        addr = socket.getaddrinfo(self.server, self.port, 0, socket.SOCK_STREAM)[0][-1]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout_s)
        try:
            self.sock.connect(addr)
            if self.ssl is not None:
                self.sock = self._handshake(self.sock)
            self.poller = select.poll()
            self.poller.register(self.sock, select.POLLIN)
            self._packet(CONNECT, connect_body(self.client_id, self.keepalive_s, clean_session, self.will,
                                               self.user, self.password))
            header, body = self._read_packet()
            if header != CONNACK or len(body) != 2:
                raise MQTTException("mqtt: expected CONNACK")
            if body[1]:
                raise MQTTException("mqtt: connection refused: " + CONNACK_ERRORS.get(body[1], str(body[1])))
            return bool(body[0] & 1)
        except Exception:
            self.close()
            raise

    @property
    def tls(self):
        """True when the connection is (to be) encrypted."""
        return self.ssl is not None

    def _handshake(self, sock):
        from edge.tls import failure_reason

        try:
            return self.ssl.wrap_socket(sock, server_hostname=self.server_hostname)
        except (OSError, ValueError) as exc:  # mbedTLS raises ValueError for a bad certificate
            raise TLSError(failure_reason(exc), str(exc).strip()[:120])

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def disconnect(self):
        """A clean disconnect: the broker does not publish the last will."""
        try:
            self._packet(DISCONNECT, b"")
        finally:
            self.close()

    def ping(self):
        self._packet(PINGREQ, b"")

    def publish(self, topic, payload, retain=False, qos=0):
        """Publish; at QoS 1 wait for the broker's PUBACK (OSError on timeout)."""
        body = encode_string(topic)
        pid = 0
        if qos:
            pid = self._next_pid()
            body += bytes((pid >> 8, pid & 0xFF))
        self._packet(PUBLISH | (qos << 1) | (1 if retain else 0), body, payload)
        if qos:
            self._wait_for(PUBACK, pid)

    def subscribe(self, topic, qos=0):
        pid = self._next_pid()
        self._packet(SUBSCRIBE, bytes((pid >> 8, pid & 0xFF)) + encode_string(topic) + bytes((qos,)))
        body = self._wait_for(SUBACK, pid)
        if body[2] == 0x80:
            raise MQTTException("mqtt: subscription refused: " + topic)

    def _wait_for(self, packet_type, pid):
        deadline = ticks_add(ticks_ms(), self.timeout_s * 1000)
        while ticks_diff(deadline, ticks_ms()) > 0:
            if not self._readable(100):
                continue
            header, body = self._read_packet()
            if header & 0xF0 == packet_type & 0xF0 and len(body) >= 2 and (body[0] << 8 | body[1]) == pid:
                return body
            self._handle(header, body)
        raise OSError("mqtt: no acknowledgement from broker")

    def _handle(self, header, body):
        if header & 0xF0 != PUBLISH:
            return  # PINGRESP and stray acks need no action
        qos = (header >> 1) & 0x03
        topic_len = body[0] << 8 | body[1]
        topic = body[2 : 2 + topic_len]
        pos = 2 + topic_len
        if qos:
            pid = body[pos] << 8 | body[pos + 1]
            pos += 2
            self._packet(PUBACK, bytes((pid >> 8, pid & 0xFF)))
        if self.callback:
            self.callback(topic, body[pos:])

    def check_msg(self, timeout_ms=0):
        """Handle incoming packets for up to timeout_ms; keep the connection alive."""
        deadline = ticks_add(ticks_ms(), timeout_ms)
        while True:
            if self._readable(max(0, ticks_diff(deadline, ticks_ms()))):
                header, body = self._read_packet()
                self._handle(header, body)
            if ticks_diff(ticks_ms(), self.last_io_ms) > self.keepalive_s * 500:
                self.ping()
            if ticks_diff(deadline, ticks_ms()) <= 0:
                return
