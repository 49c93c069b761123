"""A fake MQTT client for the worker's unit tests: it plays the broker's side
(connections with generations, deliveries, session present or not) and
records every ack the worker sends, so the delivery rules are tested without
any server."""

import threading
from collections.abc import Sequence

from ingest.mqtt import Message, MqttHandler


class FakeClient:
    def __init__(self, handler: MqttHandler):
        self.handler = handler
        self.generation = 0
        self.next_mid = 0
        self.subscriptions: set[str] = set()
        self.acked: list[int] = []  # mids acked on the live connection, in the order sent
        self.ack_calls: list[tuple[int, list[int]]] = []  # every ack() call: (generation, mids)
        self.stopped_with: list[int | None] = []
        self.lock = threading.Lock()

    # ------------------------------------------------------------ what the worker calls

    def start(self) -> None:
        self.connect(session_present=False)

    def subscribe(self, topics: Sequence[str]) -> None:
        self.subscriptions |= set(topics)
        self.handler.on_subscribed([])

    def unsubscribe(self, topics: Sequence[str]) -> None:
        self.subscriptions -= set(topics)

    def ack(self, generation: int, mids: Sequence[int]) -> bool:
        with self.lock:
            self.ack_calls.append((generation, list(mids)))
            if generation != self.generation:
                return False  # that connection is gone: nothing reaches the broker
            self.acked += mids
            return True

    def stop(self, session_expiry_s: int | None = None) -> None:
        self.stopped_with.append(session_expiry_s)

    # ------------------------------------------------------------ what the test does as the broker

    def connect(self, session_present: bool = True) -> int:
        """A (re)connection: a new generation."""
        self.generation += 1
        self.handler.on_connect(self.generation, session_present)
        return self.generation

    def deliver(self, *items: tuple[str, bytes] | tuple[str, bytes, bool], qos: int = 1) -> list[int]:
        """Deliver (topic, payload[, retain]) messages in one chunk; returns their packet ids."""
        messages = []
        for item in items:
            topic, payload, retain = (*item, False)[:3]
            mid = 0
            if qos:
                self.next_mid = self.next_mid % 65535 + 1
                mid = self.next_mid
            messages.append(Message(topic, payload, mid, retain, self.generation))
        self.handler.on_messages(messages)
        return [m.mid for m in messages]
