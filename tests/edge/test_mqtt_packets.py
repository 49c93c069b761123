"""The firmware MQTT client's packets, byte for byte, against a fake socket (no
server), as micropython-lib's umqtt is tested: CONNECT with will and
credentials, PUBLISH at QoS 0 and 1 waiting for its PUBACK, SUBSCRIBE and a
refused SUBACK, an incoming QoS 1 message acknowledged, keepalive PINGREQ,
DISCONNECT, a refused CONNACK, and the MQTT 3.1.1 remaining-length examples."""

import select
import socket
import types

import pytest

from edge import mqtt


class FakeSocket:
    """Records every byte sent; serves scripted replies, a few bytes at a time (partial reads)."""

    def __init__(self, replies: bytes = b""):
        self.sent = bytearray()
        self.inbox = bytearray(replies)
        self.closed = False
        self.connected_to = None

    def settimeout(self, timeout_s):
        self.timeout_s = timeout_s

    def connect(self, addr):
        self.connected_to = addr

    def send(self, data):
        chunk = bytes(data[:7])  # a short write: the client must loop
        self.sent += chunk
        return len(chunk)

    def recv(self, n):
        chunk = bytes(self.inbox[: min(n, 3)])
        del self.inbox[: len(chunk)]
        return chunk

    def close(self):
        self.closed = True


class FakePoll:
    def __init__(self, sock: FakeSocket):
        self.sock = sock

    def register(self, sock, mask):
        pass

    def poll(self, timeout_ms):
        return [(self.sock, 1)] if self.sock.inbox else []


@pytest.fixture
def wire(monkeypatch):
    """Route the client's socket to a FakeSocket; the test sets its replies."""
    sock = FakeSocket()
    # the firmware module's own view of socket and select, not the modules themselves: a patched
    # socket.socket would hand the fake to every thread of the test process (a broker client of another
    # test reconnecting meanwhile got one and died on it)
    fake_socket = types.SimpleNamespace(**vars(socket))
    fake_socket.getaddrinfo = lambda host, port, *a: [(2, 1, 6, "", (host, port))]
    fake_socket.socket = lambda *a: sock
    fake_select = types.SimpleNamespace(**vars(select))
    fake_select.poll = lambda: FakePoll(sock)
    monkeypatch.setattr(mqtt, "socket", fake_socket)
    monkeypatch.setattr(mqtt, "select", fake_select)
    return sock


CONNACK_OK = bytes([0x20, 0x02, 0x00, 0x00])


def test_connect_packet_carries_will_and_credentials_exactly(wire):
    wire.inbox += CONNACK_OK
    client = mqtt.MQTTClient("dev1", "broker.local", 1883, user="dev1", password="pw", keepalive_s=30)
    client.set_last_will("t/s", b"off", retain=True, qos=1)
    assert client.connect() is False
    expected = (b"\x10\x24" + b"\x00\x04MQTT\x04" + bytes([0x02 | 0x04 | 0x08 | 0x20 | 0x80 | 0x40]) + b"\x00\x1e"
                + b"\x00\x04dev1" + b"\x00\x03t/s" + b"\x00\x03off" + b"\x00\x04dev1" + b"\x00\x02pw")
    assert bytes(wire.sent) == expected
    assert wire.connected_to == ("broker.local", 1883)


def test_session_present_flag_is_returned(wire):
    wire.inbox += bytes([0x20, 0x02, 0x01, 0x00])
    assert mqtt.MQTTClient("dev1", "h").connect(clean_session=False) is True
    assert wire.sent[9] == 0x00  # clean session bit off, no will, no credentials


def test_refused_connack_raises_and_closes(wire):
    wire.inbox += bytes([0x20, 0x02, 0x00, 0x04])
    client = mqtt.MQTTClient("dev1", "h", user="dev1", password="bad")
    with pytest.raises(mqtt.MQTTException, match="bad username or password"):
        client.connect()
    assert wire.closed and client.sock is None


def test_publish_qos0_and_qos1_bytes_and_puback_wait(wire):
    wire.inbox += CONNACK_OK
    client = mqtt.MQTTClient("dev1", "h")
    client.connect()
    wire.sent.clear()
    client.publish("a/b", b"hi")
    assert bytes(wire.sent) == b"\x30\x07\x00\x03a/bhi"
    wire.sent.clear()
    wire.inbox += b"\x40\x02\x00\x01"  # PUBACK for packet id 1
    client.publish("a/b", memoryview(bytearray(b"{}")), retain=True, qos=1)  # a reused buffer's view
    assert bytes(wire.sent) == b"\x33\x09\x00\x03a/b\x00\x01{}"
    assert not wire.inbox  # the PUBACK was consumed


def test_publish_without_puback_times_out(wire, monkeypatch):
    wire.inbox += CONNACK_OK
    client = mqtt.MQTTClient("dev1", "h", timeout_s=0)
    client.connect()
    with pytest.raises(OSError, match="no acknowledgement"):
        client.publish("a/b", b"x", qos=1)


def test_subscribe_bytes_and_a_refused_suback(wire):
    wire.inbox += CONNACK_OK
    client = mqtt.MQTTClient("dev1", "h")
    client.connect()
    wire.sent.clear()
    wire.inbox += b"\x90\x03\x00\x01\x01"
    client.subscribe("c/d", 1)
    assert bytes(wire.sent) == b"\x82\x08\x00\x01\x00\x03c/d\x01"
    wire.inbox += b"\x90\x03\x00\x02\x80"
    with pytest.raises(mqtt.MQTTException, match="subscription refused"):
        client.subscribe("c/#", 1)


def test_incoming_qos1_message_is_acknowledged_and_delivered(wire):
    wire.inbox += CONNACK_OK
    client = mqtt.MQTTClient("dev1", "h", keepalive_s=60)
    got = []
    client.set_callback(lambda topic, payload: got.append((topic, payload)))
    client.connect()
    wire.sent.clear()
    wire.inbox += b"\x32\x0a\x00\x03c/d\x00\x07cfg"  # QoS 1, packet id 7
    client.check_msg(0)
    assert got == [(b"c/d", b"cfg")]
    assert bytes(wire.sent) == b"\x40\x02\x00\x07"


def test_keepalive_ping_and_disconnect(wire):
    wire.inbox += CONNACK_OK
    client = mqtt.MQTTClient("dev1", "h", keepalive_s=2)
    client.connect()
    wire.sent.clear()
    client.check_msg(0)
    assert bytes(wire.sent) == b""  # just talked: no ping
    client.last_io_ms -= 1001
    client.check_msg(0)  # idle for more than half the keepalive: PINGREQ
    assert bytes(wire.sent) == b"\xc0\x00"
    wire.sent.clear()
    client.disconnect()
    assert bytes(wire.sent) == b"\xe0\x00" and wire.closed


def test_a_closed_connection_raises_oserror(wire):
    wire.inbox += b"\x20"  # CONNACK cut short
    with pytest.raises(OSError, match="closed by broker"):
        mqtt.MQTTClient("dev1", "h").connect()


@pytest.mark.parametrize("n, encoded", [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
                                        (16384, b"\x80\x80\x01"), (2097151, b"\xff\xff\x7f"),
                                        (2097152, b"\x80\x80\x80\x01"), (268435455, b"\xff\xff\xff\x7f")])
def test_remaining_length_matches_the_spec_examples(n, encoded):
    assert mqtt.remaining_length(n) == encoded


def test_encode_string_is_length_prefixed_utf8():
    assert mqtt.encode_string("é/x") == b"\x00\x04\xc3\xa9/x"
