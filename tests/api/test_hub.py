"""The SSE hub on its own: a client too slow to keep up is cut off (its
browser reconnects and reloads) instead of holding memory without bound;
the others keep every change."""

import asyncio

from api.alerts import hub as hub_module
from api.alerts.hub import AlertHub


def test_a_slow_stream_is_cut_off_and_a_fast_one_keeps_everything(monkeypatch):
    monkeypatch.setattr(hub_module, "QUEUE_SIZE", 10)

    async def scenario():
        hub = AlertHub()
        hub.bind(asyncio.get_running_loop())
        fast, slow = hub.stream({"who": "fast"}), hub.stream({"who": "slow"})
        assert "hello" in await anext(fast) and "hello" in await anext(slow)
        received = []
        for n in range(25):
            hub.publish("alert", {"n": n})
            received.append(await anext(fast))  # the fast client reads as changes come
        assert [f'"n":{n}' in frame for n, frame in enumerate(received)] == [True] * 25
        leftovers = [frame async for frame in slow]  # the slow one never read: its stream ends
        assert len(leftovers) < 10 and hub.clients() == 1
        await fast.aclose()
        assert hub.clients() == 0

    asyncio.run(scenario())


def test_publish_from_another_thread_reaches_the_stream():
    async def scenario():
        hub = AlertHub()
        hub.bind(asyncio.get_running_loop())
        stream = hub.stream({})
        await anext(stream)
        await asyncio.to_thread(hub.publish, "alert", {"from": "mqtt thread"})
        frame = await asyncio.wait_for(anext(stream), 2)
        assert frame == 'event: alert\ndata: {"from":"mqtt thread"}\n\n'
        await stream.aclose()

    asyncio.run(scenario())
