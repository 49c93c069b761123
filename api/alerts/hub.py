"""Fan-out of alert changes to the SSE streams.

Changes come from the MQTT thread (analytics), from request handlers and from
the escalation task; `publish` may be called from any thread. Each stream
has a bounded queue: a client too slow to keep up is cut off (its browser
reconnects and reloads the list) rather than holding memory without bound.
A stream whose key is revoked or changes role is ended by api.rights with an
`end` event saying why.
"""

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

from api.auth import Principal
from api.rights import StreamRights

QUEUE_SIZE = 1000
HEARTBEAT_S = 15.0


class AlertHub:
    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queues: set[asyncio.Queue] = set()
        self.lock = threading.Lock()
        self.published = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The event loop the streams live on (set when the app starts)."""
        self.loop = loop

    def publish(self, event: str, data: dict[str, Any]) -> None:
        """Queue one change for every open stream; safe from any thread."""
        if self.loop is None or self.loop.is_closed():
            return
        frame = f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
        self.published += 1
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._fan_out(frame)
        else:
            self.loop.call_soon_threadsafe(self._fan_out, frame)

    def _fan_out(self, frame: str) -> None:
        with self.lock:
            queues = list(self.queues)
        for queue in queues:
            try:
                queue.put_nowait(frame)
            except asyncio.QueueFull:
                self._drop(queue, overflowed=True)

    def _drop(self, queue: asyncio.Queue, overflowed: bool = False, last: str | None = None) -> None:
        with self.lock:
            self.queues.discard(queue)
        if overflowed or last:
            # make room for the last frame and the end-of-stream marker so the stream closes now
            while not queue.empty():
                queue.get_nowait()
            if last:
                queue.put_nowait(last)
            queue.put_nowait(None)

    async def stream(self, hello: dict[str, Any], principal: Principal | None = None,
                     rights: StreamRights | None = None) -> AsyncIterator[str]:
        """SSE frames for one client: a hello, then each change, with heartbeats between;
        an `end` event and the end of the stream when the key loses its right."""
        queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        with self.lock:
            self.queues.add(queue)
        grant = None
        if rights is not None and principal is not None:
            grant = rights.grant(principal, lambda reason: self._drop(queue, last=end_frame(reason)))
        try:
            yield f"retry: 2000\nevent: hello\ndata: {json.dumps(hello)}\n\n"
            while True:
                try:
                    frame = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    yield ": heartbeat\n\n"
                    continue
                if frame is None:
                    return
                yield frame
        finally:
            self._drop(queue)
            if grant is not None:
                grant.close()

    def clients(self) -> int:
        with self.lock:
            return len(self.queues)


def end_frame(reason: str) -> str:
    """The last frame of a stream whose key lost its right (`revoked`, `role_changed`)."""
    return f"event: end\ndata: {json.dumps({'reason': reason})}\n\n"
