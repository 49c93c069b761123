# A small MQTT 3.1.1 client for the device (QoS 0 and 1, keepalive, last
# will, username and password). Its methods map one to one onto protocol
# operations; reconnecting and retrying live in the agent, not here.
#
# Runs under MicroPython and CPython: only `socket`, `select`, `struct`-free
# byte handling and `time`. Reads are exact (partial reads are looped) and a
# broken connection raises OSError, which the caller treats as "reconnect".

import select
import socket
import time

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82
SUBACK = 0x90
PINGREQ = 0xC0
PINGRESP = 0xD0
DISCONNECT = 0xE0

_CONNACK_ERRORS = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad username or password",
    5: "not authorised",
}


MAX_PACKET_BYTES = 32768  # larger packets are read and dropped: a device has little RAM


class MQTTException(OSError):
    pass


def _ticks_ms():
    if hasattr(time, "ticks_ms"):
        return time.ticks_ms()
    return int(time.monotonic() * 1000)


def _ticks_add(a, delta):
    if hasattr(time, "ticks_add"):
        return time.ticks_add(a, delta)
    return a + delta


def _ticks_diff(a, b):
    if hasattr(time, "ticks_diff"):
        return time.ticks_diff(a, b)
    return a - b


def _utf8(text):
    data = text.encode() if type(text) is str else bytes(text)
    return bytes((len(data) >> 8, len(data) & 0xFF)) + data


def _remaining_length(n):
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
    payload = _utf8(client_id)
    if will:
        topic, message, retain, qos = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += _utf8(topic) + _utf8(message)
    if user is not None:
        flags |= 0x80
        payload += _utf8(user)
        if password is not None:
            flags |= 0x40
            payload += _utf8(password)
    return b"\x00\x04MQTT\x04" + bytes((flags, keepalive_s >> 8, keepalive_s & 0xFF)) + payload


class MQTTClient:
    def __init__(self, client_id, server, port=1883, user=None, password=None, keepalive_s=60, timeout_s=10):
        self.client_id = client_id
        self.server = server
        self.port = port
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
        self.last_io_ms = _ticks_ms()

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

    def _packet(self, header, body):
        self._send(bytes((header,)) + _remaining_length(len(body)) + body)

    def _next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    def _readable(self, timeout_ms):
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
            self.poller = select.poll()
            self.poller.register(self.sock, select.POLLIN)
            self._packet(CONNECT, connect_body(self.client_id, self.keepalive_s, clean_session, self.will,
                                               self.user, self.password))
            header, body = self._read_packet()
            if header != CONNACK or len(body) != 2:
                raise MQTTException("mqtt: expected CONNACK")
            if body[1]:
                raise MQTTException("mqtt: connection refused: " + _CONNACK_ERRORS.get(body[1], str(body[1])))
            return bool(body[0] & 1)
        except Exception:
            self.close()
            raise

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
        body = _utf8(topic)
        pid = 0
        if qos:
            pid = self._next_pid()
            body += bytes((pid >> 8, pid & 0xFF))
        self._packet(PUBLISH | (qos << 1) | (1 if retain else 0), body + payload)
        if qos:
            self._wait_for(PUBACK, pid)

    def subscribe(self, topic, qos=0):
        pid = self._next_pid()
        self._packet(SUBSCRIBE, bytes((pid >> 8, pid & 0xFF)) + _utf8(topic) + bytes((qos,)))
        body = self._wait_for(SUBACK, pid)
        if body[2] == 0x80:
            raise MQTTException("mqtt: subscription refused: " + topic)

    def _wait_for(self, packet_type, pid):
        deadline = _ticks_add(_ticks_ms(), self.timeout_s * 1000)
        while _ticks_diff(deadline, _ticks_ms()) > 0:
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
        deadline = _ticks_add(_ticks_ms(), timeout_ms)
        while True:
            if self._readable(max(0, _ticks_diff(deadline, _ticks_ms()))):
                header, body = self._read_packet()
                self._handle(header, body)
            if _ticks_diff(_ticks_ms(), self.last_io_ms) > self.keepalive_s * 500:
                self.ping()
            if _ticks_diff(deadline, _ticks_ms()) <= 0:
                return
