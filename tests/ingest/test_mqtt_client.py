"""The ingest worker's MQTT 5 client, byte by byte, against a scripted socket
(no broker): the packets it writes, PUBLISH parsing across chunk borders, the
messages that follow CONNACK in the same chunk, acks in one write, no acks for
a connection that is gone."""

import socket
import struct
import threading

from ingest import mqtt
from ingest.mqtt import Message, MqttSubscriber, parse_packets
from tests.conftest import wait_for


def publish(topic: str, payload: bytes, mid: int = 0, retain: bool = False, props: bytes = b"") -> bytes:
    first = mqtt.PUBLISH | (0x02 if mid else 0) | (1 if retain else 0)
    body = mqtt._str(topic) + (struct.pack("!H", mid) if mid else b"") + mqtt._varint(len(props)) + props
    return mqtt._packet(first, body + payload)


def test_packets_written_are_the_protocol_bytes():
    connect = mqtt.connect_packet("svc-ingest-0", "svc-ingest-0", "pw", 30, 604800, 1000)
    assert connect[0] == 0x10
    body = connect[2:]  # remaining length fits one byte here
    assert body[:7] == b"\x00\x04MQTT\x05" and body[7] == 0xC0  # username, password, clean_start off
    assert body[8:10] == b"\x00\x1e"  # keepalive 30 s
    assert body[10:19] == b"\x08\x11\x00\x09\x3a\x80\x21\x03\xe8"  # session expiry 604800 s, receive maximum 1000
    assert body[19:] == b"\x00\x0csvc-ingest-0\x00\x0csvc-ingest-0\x00\x02pw"
    assert mqtt.pubacks([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"
    assert mqtt.subscribe_packet(7, ["a/+"]) == b"\x82\x09\x00\x07\x00\x00\x03a/+\x11"  # QoS 1, retain handling 1
    assert mqtt.unsubscribe_packet(8, ["a"]) == b"\xa2\x06\x00\x08\x00\x00\x01a"
    assert mqtt.disconnect_packet(0) == b"\xe0\x07\x00\x05\x11\x00\x00\x00\x00"
    assert mqtt._varint(321) == b"\xc1\x02"


def test_publish_parsing_across_chunks():
    big = b"x" * 300  # a two-byte remaining length
    stream = (publish("city/v1/dev/a/telemetry", b"{}", mid=1)
              + publish("city/v1/dev/b/status", big, mid=2, retain=True, props=b"\x01\x01")
              + publish("t", b"q0") + mqtt.pubacks([9]))
    for cut in range(len(stream) + 1):  # every place a recv could end
        buf, messages = bytearray(stream[:cut]), []
        used, others = parse_packets(buf, 3, messages)
        del buf[:used]
        buf += stream[cut:]
        used2, others2 = parse_packets(buf, 3, messages)
        assert used2 == len(buf)
        assert messages == [Message("city/v1/dev/a/telemetry", b"{}", 1, False, 3),
                            Message("city/v1/dev/b/status", big, 2, True, 3), Message("t", b"q0", 0, False, 3)]
        assert others + others2 == [(mqtt.PUBACK, b"\x00\x09")]


class Handler:
    def __init__(self):
        self.connects: list[tuple[int, bool]] = []
        self.messages: list[Message] = []
        self.subscribed: list[list[int]] = []
        self.disconnects: list[str] = []

    def on_connect(self, generation, session_present):
        self.connects.append((generation, session_present))
        client.subscribe(["city/v1/dev/+/telemetry"])

    def on_messages(self, messages):
        self.messages += messages

    def on_subscribed(self, failures):
        self.subscribed.append(failures)

    def on_disconnect(self, reason):
        self.disconnects.append(reason)


client: MqttSubscriber


def read_packet(conn: socket.socket) -> bytes:
    """One whole packet as it came on the wire."""
    head = conn.recv(2)
    length, shift, i = head[1] & 0x7F, 7, head[1]
    while i & 0x80:
        i = conn.recv(1)[0]
        head += bytes([i])
        length |= (i & 0x7F) << shift
        shift += 7
    body = b""
    while len(body) < length:
        body += conn.recv(length - len(body))
    return head + body


def test_a_session_against_a_scripted_broker():
    global client
    listener = socket.create_server(("127.0.0.1", 0))
    handler = Handler()
    client = MqttSubscriber("127.0.0.1", listener.getsockname()[1], "svc-ingest-0", "svc-ingest-0", "pw", handler,
                            receive_maximum=100, backoff_s=(0.05, 0.05))
    seen: list[bytes] = []

    def broker() -> None:
        for generation in (1, 2):
            conn, _ = listener.accept()
            seen.append(read_packet(conn))  # CONNECT
            # CONNACK (session present) and a queued message in one chunk
            conn.sendall(b"\x20\x03\x01\x00\x00" + publish("city/v1/dev/a/telemetry", b"queued", mid=40 + generation))
            seen.append(read_packet(conn))  # SUBSCRIBE
            conn.sendall(b"\x90\x04" + seen[-1][2:4] + b"\x00\x01")  # SUBACK, QoS 1 granted
            seen.append(read_packet(conn))  # the ack of the queued message
            if generation == 1:
                conn.close()  # the connection drops
            else:
                seen.append(read_packet(conn))  # DISCONNECT
                conn.close()

    thread = threading.Thread(target=broker, daemon=True)
    thread.start()
    client.start()
    wait_for(lambda: handler.messages, 5)
    assert handler.connects == [(1, True)] and handler.messages[0] == Message("city/v1/dev/a/telemetry", b"queued",
                                                                              41, False, 1)
    wait_for(lambda: handler.subscribed == [[]], 5)
    assert client.ack(1, [41])
    wait_for(lambda: handler.connects == [(1, True), (2, True)], 5)
    assert not client.ack(1, [41])  # that connection is gone: nothing is sent
    wait_for(lambda: len(handler.messages) == 2, 5)
    assert client.ack(2, [42])
    wait_for(lambda: len(seen) == 6, 5)
    client.stop(session_expiry_s=0)
    thread.join(5)
    assert seen[0][0] == 0x10 and seen[1][0] == 0x82
    assert seen[2] == b"\x40\x02\x00\x29" and seen[5] == b"\x40\x02\x00\x2a"  # the acks, nothing for the lost one
    assert seen[6] == mqtt.disconnect_packet(0)  # leaving ends the session on the broker
    assert len(handler.disconnects) == 1
    listener.close()
