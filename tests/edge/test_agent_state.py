"""The agent's state machine on CPython (the simulator runs it this way; the
micropython tests run it against a real broker): batching, history, drops,
thresholds and resending the unacknowledged message."""

import json

from edge import contract
from edge.agent import HIST_BATCH, Agent


class Source:
    def __init__(self):
        self.flow = 10.0

    def read(self):
        return {"flow_lps": self.flow}, 0


class Client:
    """Records publishes; fails the next one when told to (a broker that went away)."""

    def __init__(self):
        self.sent = []
        self.fail_next = False

    def set_callback(self, callback):
        self.callback = callback

    def set_last_will(self, *args):
        self.will = args

    def publish(self, topic, payload, retain=False, qos=0):
        if self.fail_next:
            self.fail_next = False
            raise OSError("broker gone")
        self.sent.append((topic, json.loads(payload)))


def make_agent(**config):
    client = Client()
    agent = Agent({"device_id": "wtr-bb-0001", **config}, Source(), client)
    return agent, client


def test_batches_live_samples_and_flags_offline_ones_as_history():
    agent, client = make_agent(batch_size=3)
    agent.connected = False
    for t in range(130):
        agent.sample(1_000 + t)  # taken while offline: history
    agent.connected = True
    for t in range(130, 136):
        agent.sample(1_000 + t)
    agent.publish_ready()
    bodies = [body for _, body in client.sent]
    assert [len(b["r"]) for b in bodies] == [HIST_BATCH, HIST_BATCH, 10, 3, 3]
    assert [b.get("hist", False) for b in bodies] == [True, True, True, False, False]
    times = [row[0] for b in bodies for row in b["r"]]
    assert times == list(range(1_000, 1_136))  # in order, none lost
    assert [b["seq"] for b in bodies] == [0, 1, 2, 3, 4]
    assert client.will[0] == contract.status_topic("wtr-bb-0001")


def test_a_full_buffer_drops_the_oldest_and_says_how_many_once():
    agent, client = make_agent(buffer_capacity=5)
    for t in range(8):
        agent.sample(t, hist=True)
    agent.connected = True
    agent.publish_ready()
    assert [row[0] for row in client.sent[0][1]["r"]] == [3, 4, 5, 6, 7]
    assert client.sent[0][1]["dropped"] == 3
    agent.sample(8)
    agent.publish_ready()
    assert "dropped" not in client.sent[1][1]


def test_a_threshold_breach_is_sent_at_once_not_at_the_batch_end():
    agent, client = make_agent(batch_size=10)
    agent.connected = True
    agent.apply_config(contract.encode_config(5000, 10, {"flow_lps": [0, 50]}))
    agent.sample(1)
    agent.publish_ready()
    assert client.sent == []
    agent.source.flow = 80.0
    agent.sample(2)
    agent.publish_ready()
    assert [row[0] for row in client.sent[0][1]["r"]] == [1, 2]
    assert agent.interval_ms == 5000


def test_an_unacknowledged_message_is_resent_with_the_same_seq():
    agent, client = make_agent()
    agent.connected = True
    agent.sample(1)
    client.fail_next = True
    try:
        agent.publish_ready()
    except OSError:
        agent.connected = False
    agent.sample(2)  # offline now: history
    agent.connected = True
    agent.publish_ready()
    assert [(b["seq"], [r[0] for r in b["r"]]) for _, b in client.sent] == [(0, [1]), (1, [2])]


def test_hostile_configs_change_nothing():
    agent, _ = make_agent(interval_ms=2000, batch_size=2)
    for raw in (b"", b"{", b"[]", b'{"v":1,"interval_ms":10}', b'{"v":1,"interval_ms":1e400}',
                b'{"v":1,"interval_ms":5000,"thresholds":{"flow_lps":[9,1]}}', b"\xff" * 70000,
                b'{"v":1,"interval_ms":5000,"batch_size":100000}', b'{"v":2,"interval_ms":5000}'):
        agent.apply_config(raw)
    assert (agent.interval_ms, agent.batch_size, agent.thresholds) == (2000, 2, {})


def test_each_boot_has_its_own_identity_in_every_message():
    first, client = make_agent()
    first.connected = True
    first.sample(1_000)
    first.publish_ready()
    _, body = client.sent[0]
    assert body["seq"] == 0 and body["boot"] == first.boot
    assert 0 <= first.boot < 2**31
    assert json.loads(first.status())["boot"] == first.boot
    assert json.loads(client.will[1])["boot"] == first.boot  # the last will names the boot that died
    rebooted, _ = make_agent()
    assert rebooted.boot != first.boot  # seq 0 again, but a different boot: not a replay
