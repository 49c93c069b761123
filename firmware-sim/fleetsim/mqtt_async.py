"""A tiny MQTT 3.1.1 client on asyncio streams: one per simulated device, so
thousands share one process. It speaks the same packets as the firmware's
client (edge/mqtt.py, whose encoders it reuses) and has the same interface the
agent expects (set_callback, set_last_will), with coroutines for the rest.

A lost connection fails every waiting operation with ConnectionError; the
caller reconnects (the agent's backoff), as on the device. With a TLS context
it speaks TLS (the server's certificate and name checked), as the firmware does.
"""


import asyncio
import ssl
from collections.abc import Callable

from edge.mqtt import (
    CONNACK,
    CONNACK_ERRORS,
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PUBACK,
    PUBLISH,
    SUBACK,
    SUBSCRIBE,
    connect_body,
    encode_string,
    remaining_length,
)

MAX_PACKET_BYTES = 1 << 20  # nothing we subscribe to is bigger; a larger length is a broken stream


def tls_context(ca_file: str) -> ssl.SSLContext:
    """A client context trusting only the fleet's CA; one for all devices (it is shared, not copied)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class AsyncMQTT:
    def __init__(self, client_id: str, host: str, port: int, user: str | None = None, password: str | None = None,
                 keepalive_s: int = 60, timeout_s: float = 10.0, tls: ssl.SSLContext | None = None,
                 server_hostname: str | None = None):
        """tls: a client context (shared by the whole fleet) for TLS, None for plain MQTT."""
        self.client_id = client_id
        self.host, self.port = host, port
        self.tls_context = tls
        self.server_hostname = server_hostname or host
        self.user, self.password = user, password
        self.keepalive_s = keepalive_s
        self.timeout_s = timeout_s
        self.callback: Callable[[bytes, bytes], None] | None = None
        self.will: tuple[str, bytes, bool, int] | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task | None = None
        self.waiting: dict[tuple[int, int], asyncio.Future] = {}  # (packet type, pid) -> future of the ack body
        self.pid = 0
        self.last_io = 0.0

    # ------------------------------------------------------------ the agent's interface

    def set_callback(self, callback: Callable[[bytes, bytes], None]) -> None:
        self.callback = callback

    def set_last_will(self, topic: str, payload: bytes, retain: bool = False, qos: int = 0) -> None:
        self.will = (topic, payload, retain, qos)

    @property
    def tls(self) -> bool:
        """True when the link is encrypted (reported in the device's birth message)."""
        return self.tls_context is not None

    @property
    def connected(self) -> bool:
        return self.writer is not None and not self.writer.is_closing()

    # ------------------------------------------------------------ protocol

    async def connect(self, clean_session: bool = True) -> None:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation (gh-86296).
        async with asyncio.timeout(self.timeout_s):
            if self.tls_context is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            else:
                self.reader, self.writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self.tls_context, server_hostname=self.server_hostname)
        try:
            self._send(CONNECT, connect_body(self.client_id, self.keepalive_s, clean_session, self.will, self.user,
                                             self.password))
            async with asyncio.timeout(self.timeout_s):
                header, body = await self._read_packet()
            if header != CONNACK or len(body) != 2:
                raise ConnectionError("mqtt: expected CONNACK")
            if body[1]:
                raise ConnectionError("mqtt: connection refused: " + CONNACK_ERRORS.get(body[1], str(body[1])))
        except BaseException:
            self.close()
            raise
        self.reader_task = asyncio.get_running_loop().create_task(self._read_loop())

    async def publish(self, topic: str, payload: bytes, retain: bool = False, qos: int = 0) -> None:
        """Publish; at QoS 1 wait for the broker's PUBACK (ConnectionError when the link breaks)."""
        body = encode_string(topic)
        if not qos:
            self._send(PUBLISH | (1 if retain else 0), body + payload)
            await self._drain()
            return
        pid = self._next_pid()
        future = self._expect(PUBACK, pid)
        self._send(PUBLISH | (qos << 1) | (1 if retain else 0), body + bytes((pid >> 8, pid & 0xFF)) + payload)
        await self._drain()
        await self._wait(future, (PUBACK, pid))

    async def subscribe(self, topic: str, qos: int = 0) -> None:
        pid = self._next_pid()
        future = self._expect(SUBACK, pid)
        self._send(SUBSCRIBE, bytes((pid >> 8, pid & 0xFF)) + encode_string(topic) + bytes((qos,)))
        body = await self._wait(future, (SUBACK, pid))
        if body[2] == 0x80:
            raise ConnectionError("mqtt: subscription refused: " + topic)

    async def ping_if_idle(self) -> None:
        if asyncio.get_running_loop().time() - self.last_io > self.keepalive_s / 2:
            self._send(PINGREQ, b"")
            await self._drain()

    async def disconnect(self) -> None:
        """A clean disconnect: the broker does not publish the last will."""
        try:
            if self.connected:
                self._send(DISCONNECT, b"")
                await self._drain()
        finally:
            self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.reader_task is not None and self.reader_task is not asyncio.current_task():
            self.reader_task.cancel()
        self._fail_waiting(ConnectionError("mqtt: connection closed"))
        self.writer = None
        self.reader_task = None

    # ------------------------------------------------------------ plumbing

    def _send(self, header: int, body: bytes) -> None:
        if not self.connected:
            raise ConnectionError("mqtt: not connected")
        self.writer.write(bytes((header,)) + remaining_length(len(body)) + body)
        self.last_io = asyncio.get_running_loop().time()

    async def _drain(self) -> None:
        try:
            await self.writer.drain()
        except (OSError, AttributeError) as exc:
            raise ConnectionError(f"mqtt: send failed: {exc}") from exc

    def _next_pid(self) -> int:
        self.pid = self.pid % 65535 + 1
        return self.pid

    def _expect(self, packet_type: int, pid: int) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.waiting[(packet_type & 0xF0, pid)] = future
        return future

    async def _wait(self, future: asyncio.Future, key: tuple[int, int]) -> bytes:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await future
        except TimeoutError as exc:
            self.close()
            raise ConnectionError("mqtt: no acknowledgement from broker") from exc
        finally:
            self.waiting.pop((key[0] & 0xF0, key[1]), None)

    def _fail_waiting(self, exc: Exception) -> None:
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(exc)
        self.waiting.clear()

    async def _read_packet(self) -> tuple[int, bytes]:
        header = (await self.reader.readexactly(1))[0]
        length, shift = 0, 0
        while True:
            byte = (await self.reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 21:
                raise ConnectionError("mqtt: bad remaining length")
        if length > MAX_PACKET_BYTES:
            raise ConnectionError(f"mqtt: packet of {length} bytes")
        return header, (await self.reader.readexactly(length) if length else b"")

    async def _read_loop(self) -> None:
        try:
            while True:
                header, body = await self._read_packet()
                self._handle(header, body)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, IndexError) as exc:
            self._fail_waiting(ConnectionError(f"mqtt: connection lost: {exc!r}"))
            if self.writer is not None:
                self.writer.close()

    def _handle(self, header: int, body: bytes) -> None:
        kind = header & 0xF0
        if kind in (PUBACK & 0xF0, SUBACK & 0xF0) and len(body) >= 2:
            future = self.waiting.get((kind, body[0] << 8 | body[1]))
            if future is not None and not future.done():
                future.set_result(body)
        elif kind == PUBLISH:
            qos = (header >> 1) & 0x03
            topic_len = body[0] << 8 | body[1]
            topic, pos = body[2:2 + topic_len], 2 + topic_len
            if qos:
                pid = body[pos] << 8 | body[pos + 1]
                pos += 2
                self._send(PUBACK, bytes((pid >> 8, pid & 0xFF)))
            if self.callback:
                self.callback(topic, body[pos:])
