"""A small MQTT 5 subscriber for the ingest worker: what it needs and nothing else.

Why not paho: profiling showed paho's receive path (an MQTTMessage and a
Properties object per message, a callback lock, topic-filter matching) and
one `ack()` per message from another thread (a wake-up syscall plus a send
per ack) cost ~5x the decoding itself at one reading a message. Here one
thread reads the socket in large chunks and parses every complete PUBLISH of
a chunk in one tight loop, hands the whole list over at once, and the acks
of a batch leave in one `sendall`.

The client maps one to one onto protocol operations (connect, subscribe,
unsubscribe, ack, ping, disconnect); reconnecting with backoff is the loop
around them. Each connection has a generation number: a message carries the
generation it came on, and acks for an earlier generation are never sent
(the broker redelivers those messages itself; on a new session the same
packet id may name another message).

Plain TCP only: the services talk to the broker on loopback or the compose
network (devices use the TLS listener).
"""

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

log = logging.getLogger("ingest.mqtt")

CONNECT, CONNACK, PUBLISH, PUBACK = 0x10, 0x20, 0x30, 0x40
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 0x82, 0x90, 0xA2, 0xB0
PINGREQ, PINGRESP, DISCONNECT = 0xC0, 0xD0, 0xE0
PROP_SESSION_EXPIRY = 0x11
PROP_RECEIVE_MAXIMUM = 0x21
RETAIN_HANDLING_IF_NEW = 1  # subscription option: retained copies only for a subscription that did not exist
RECV_BYTES = 256 * 1024
CONNECT_TIMEOUT_S = 10.0


class Message(NamedTuple):
    topic: str
    payload: bytes
    mid: int  # packet id; 0 for QoS 0 (nothing to ack)
    retain: bool
    generation: int  # the connection it came on


class MqttHandler(Protocol):
    """What the client calls, always from its own network thread."""

    def on_connect(self, generation: int, session_present: bool) -> None: ...

    def on_messages(self, messages: list[Message]) -> None: ...

    def on_subscribed(self, failures: list[int]) -> None: ...

    def on_disconnect(self, reason: str) -> None: ...


class MqttClient(Protocol):
    """The client the worker uses (a fake in the unit tests, MqttSubscriber in production)."""

    def start(self) -> None: ...

    def subscribe(self, topics: Sequence[str]) -> None: ...

    def unsubscribe(self, topics: Sequence[str]) -> None: ...

    def ack(self, generation: int, mids: Sequence[int]) -> bool: ...

    def stop(self, session_expiry_s: int | None = None) -> None: ...


class ProtocolError(Exception):
    pass


class SessionTakenOver(ConnectionError):
    """The broker handed our session to another client that connected with our client id."""


SESSION_TAKEN_OVER = 0x8E  # DISCONNECT reason code


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def connect_packet(client_id: str, username: str, password: str, keepalive_s: int, session_expiry_s: int,
                   receive_maximum: int, clean_start: bool = False) -> bytes:
    flags = 0x80 | 0x40 | (0x02 if clean_start else 0)
    props = (bytes([PROP_SESSION_EXPIRY]) + struct.pack("!I", session_expiry_s)
             + bytes([PROP_RECEIVE_MAXIMUM]) + struct.pack("!H", receive_maximum))
    body = (_str("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive_s) + _varint(len(props)) + props
            + _str(client_id) + _str(username) + _str(password))
    return _packet(CONNECT, body)


def subscribe_packet(packet_id: int, topics: Sequence[str], qos: int = 1) -> bytes:
    options = qos | (RETAIN_HANDLING_IF_NEW << 4)
    body = struct.pack("!H", packet_id) + b"\x00" + b"".join(_str(t) + bytes([options]) for t in topics)
    return _packet(SUBSCRIBE, body)


def unsubscribe_packet(packet_id: int, topics: Sequence[str]) -> bytes:
    return _packet(UNSUBSCRIBE, struct.pack("!H", packet_id) + b"\x00" + b"".join(_str(t) for t in topics))


def pubacks(mids: Sequence[int]) -> bytes:
    """PUBACKs with success implied (MQTT 5 lets the reason code be left out): 4 bytes each."""
    return b"".join(struct.pack("!BBH", PUBACK, 2, mid) for mid in mids)


def disconnect_packet(session_expiry_s: int | None = None) -> bytes:
    if session_expiry_s is None:
        return bytes([DISCONNECT, 0])
    props = bytes([PROP_SESSION_EXPIRY]) + struct.pack("!I", session_expiry_s)
    return _packet(DISCONNECT, b"\x00" + _varint(len(props)) + props)


def _read_varint(buf: bytes | bytearray, i: int) -> tuple[int, int] | None:
    """(value, index after it), or None when the buffer ends inside it."""
    value, shift = 0, 0
    while i < len(buf):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            return value, i
        shift += 7
        if shift > 21:
            raise ProtocolError("remaining length longer than 4 bytes")
    return None


def parse_packets(buf: bytearray, generation: int, messages: list[Message]) -> tuple[int, list[tuple[int, bytes]]]:
    """Parse every complete packet at the start of `buf`.

    PUBLISH packets become Messages appended to `messages`; other packets are
    returned as (first byte, body). Returns (bytes consumed, other packets)."""
    pos, end_buf, others = 0, len(buf), []
    while end_buf - pos >= 2:
        header = _read_varint(buf, pos + 1)
        if header is None:
            break
        length, start = header
        end = start + length
        if end > end_buf:
            break
        first = buf[pos]
        if first & 0xF0 == PUBLISH:
            topic_end = start + 2 + ((buf[start] << 8) | buf[start + 1])
            topic = buf[start + 2:topic_end].decode("utf-8", "replace")
            mid = 0
            if first & 0x06:
                mid = (buf[topic_end] << 8) | buf[topic_end + 1]
                topic_end += 2
            props = _read_varint(buf, topic_end)
            if props is None:
                raise ProtocolError("PUBLISH without properties length")
            messages.append(Message(topic, bytes(buf[props[1] + props[0]:end]), mid, bool(first & 1), generation))
        else:
            others.append((first, bytes(buf[start:end])))
        pos = end
    return pos, others


def _first_packet(buf: bytearray) -> tuple[int, bytes] | None:
    """Take the first complete packet off `buf` (what follows CONNACK is left for the read loop)."""
    header = _read_varint(buf, 1) if len(buf) >= 2 else None
    if header is None or header[1] + header[0] > len(buf):
        return None
    length, start = header
    first, body = buf[0], bytes(buf[start:start + length])
    del buf[:start + length]
    return first, body


class MqttSubscriber:
    """One durable MQTT 5 session (clean_start=False, a session expiry, a Receive Maximum)."""

    def __init__(self, host: str, port: int, client_id: str, username: str, password: str, handler: MqttHandler,
                 receive_maximum: int = 1000, session_expiry_s: int = 7 * 24 * 3600, keepalive_s: int = 30,
                 backoff_s: tuple[float, float] = (0.1, 1.0), clean_start: bool = False, give_way: bool = False):
        self.address = (host, port)
        self.connect_bytes = connect_packet(client_id, username, password, keepalive_s, session_expiry_s,
                                            receive_maximum, clean_start)
        self.handler = handler
        self.keepalive_s = keepalive_s
        self.backoff_s = backoff_s
        self.generation = 0
        self.sock: socket.socket | None = None
        self.send_lock = threading.Lock()  # guards sock, generation and the bytes on the wire
        self.stopping = threading.Event()
        # give_way: once connected, never reconnect: a lost connection may be the worker taking its
        # session back (then taken_over is set); used by `city ingest retire-worker`
        self.give_way = give_way
        self.taken_over = threading.Event()
        self.last_sent = 0.0
        self.packet_id = 0
        self.awaiting: set[int] = set()  # SUBSCRIBE packet ids not yet answered
        self.failures: list[int] = []
        self.thread = threading.Thread(target=self._run, name="ingest-mqtt", daemon=True)

    # ------------------------------------------------------------ operations (any thread)

    def start(self) -> None:
        self.thread.start()

    def subscribe(self, topics: Sequence[str]) -> None:
        packet_id = self._next_id()
        self.awaiting.add(packet_id)
        self._send(subscribe_packet(packet_id, topics))

    def unsubscribe(self, topics: Sequence[str]) -> None:
        self._send(unsubscribe_packet(self._next_id(), topics))

    def ack(self, generation: int, mids: Sequence[int]) -> bool:
        """Acknowledge messages of connection `generation`, in the order given. False (and nothing
        sent) when that connection is gone: the broker will redeliver them."""
        data = pubacks(mids)
        with self.send_lock:
            if generation != self.generation or self.sock is None:
                return False
            try:
                self.sock.sendall(data)
                self.last_sent = time.monotonic()
            except OSError:
                return False  # the reader notices the broken connection and reconnects
        return True

    def stop(self, session_expiry_s: int | None = None) -> None:
        """Leave with a DISCONNECT. `session_expiry_s=0` ends the session on the broker."""
        self.stopping.set()
        with self.send_lock:
            if self.sock is not None:
                try:
                    self.sock.sendall(disconnect_packet(session_expiry_s))
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self.thread.join(5)

    # ------------------------------------------------------------ the network thread

    def _next_id(self) -> int:
        with self.send_lock:
            self.packet_id = self.packet_id % 65535 + 1
            return self.packet_id

    def _send(self, data: bytes) -> None:
        with self.send_lock:
            if self.sock is None:
                raise ConnectionError("not connected")
            self.sock.sendall(data)
            self.last_sent = time.monotonic()

    def _run(self) -> None:
        backoff = self.backoff_s[0]
        while not self.stopping.is_set():
            try:
                self._session()
                backoff = self.backoff_s[0]
            except (OSError, ConnectionError, ProtocolError) as exc:
                if self.stopping.is_set():
                    break
                if self.give_way and self.generation:
                    # Never take the session back: it is the worker's. Mosquitto 2.0.11 closes a taken-over
                    # connection without MQTT 5's DISCONNECT 0x8e, so a broker that still answers means taken.
                    if isinstance(exc, SessionTakenOver) or self._broker_answers():
                        self.taken_over.set()
                    self.stopping.set()
                self.handler.on_disconnect(repr(exc))
            finally:
                self._close()
            if self.stopping.wait(backoff):
                break
            backoff = min(backoff * 2, self.backoff_s[1])

    def _broker_answers(self) -> bool:
        try:
            socket.create_connection(self.address, timeout=CONNECT_TIMEOUT_S).close()
            return True
        except OSError:
            return False

    def _close(self) -> None:
        with self.send_lock:
            sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()

    def _session(self) -> None:
        sock = socket.create_connection(self.address, timeout=CONNECT_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(self.connect_bytes)
        buf = bytearray()
        session_present = self._connack(sock, buf)
        sock.settimeout(min(1.0, self.keepalive_s / 2))
        with self.send_lock:
            self.sock = sock
            self.generation += 1
            generation = self.generation
            self.last_sent = time.monotonic()
            self.awaiting.clear()
        self.handler.on_connect(generation, session_present)
        self._read_loop(sock, buf, generation)

    def _connack(self, sock: socket.socket, buf: bytearray) -> bool:
        while True:
            data = sock.recv(RECV_BYTES)
            if not data:
                raise ConnectionError("broker closed the connection before CONNACK")
            buf += data
            packet = _first_packet(buf)
            if packet is not None:
                first, body = packet
                if first & 0xF0 != CONNACK or len(body) < 2:
                    raise ProtocolError(f"expected CONNACK, got packet type {first >> 4}")
                if body[1] >= 0x80:
                    raise ConnectionError(f"broker refused the connection: reason code 0x{body[1]:02x}")
                return bool(body[0] & 1)

    def _read_loop(self, sock: socket.socket, buf: bytearray, generation: int) -> None:
        last_received = last_ping = time.monotonic()
        while not self.stopping.is_set():
            try:
                data = sock.recv(RECV_BYTES)
            except TimeoutError:
                data = None
            now = time.monotonic()
            if data == b"":
                raise ConnectionError("broker closed the connection")
            if data:
                last_received = now
                buf += data
                messages: list[Message] = []
                used, others = parse_packets(buf, generation, messages)
                del buf[:used]
                if messages:
                    self.handler.on_messages(messages)
                for first, body in others:
                    self._control(first, body)
            # Ping when we have sent nothing (the broker's keepalive) or heard nothing (ours) for a while.
            half = self.keepalive_s / 2
            if now - self.last_sent > half or (now - last_received > half and now - last_ping > half):
                self._send(bytes([PINGREQ, 0]))
                last_ping = now
            if now - last_received > self.keepalive_s * 1.5:
                raise ConnectionError("broker silent past the keepalive")

    def _control(self, first: int, body: bytes) -> None:
        kind = first & 0xF0
        if kind == SUBACK:
            packet_id = struct.unpack_from("!H", body)[0]
            props = _read_varint(body, 2)
            codes = body[props[0] + props[1]:] if props else b""
            self.failures += [code for code in codes if code >= 0x80]
            self.awaiting.discard(packet_id)
            if not self.awaiting:
                failures, self.failures = self.failures, []
                self.handler.on_subscribed(failures)
        elif kind == DISCONNECT:
            code = body[0] if body else 0
            if code == SESSION_TAKEN_OVER:
                raise SessionTakenOver("broker sent DISCONNECT 0x8e: another client connected with our client id")
            raise ConnectionError(f"broker sent DISCONNECT, reason code 0x{code:02x}")
        # UNSUBACK, PINGRESP: nothing to do (PINGRESP already counted as traffic)


def subscriber_factory(host: str, port: int, client_id: str, username: str, password: str,
                       receive_maximum: int, session_expiry_s: int) -> Callable[[MqttHandler], MqttSubscriber]:
    def make(handler: MqttHandler) -> MqttSubscriber:
        return MqttSubscriber(host, port, client_id, username, password, handler, receive_maximum, session_expiry_s)

    return make
