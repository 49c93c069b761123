# Entry point. On a board, main.py at the root of the flash runs
# `from edge.main import main; main("/config.json")`. On the unix port and
# in tests: `micropython -m edge.main CONFIG.json [MAX_MESSAGES]`.
#
# CONFIG.json: {"device_id", "kind", "server", "port", "user", "password",
#               "interval_ms", "batch_size", "buffer_capacity", "spool_path"};
#   "source": "synthetic" (with "grid": [volts, hertz] and "utc_offset_h" from the city
#   profile), or "board" with a "drivers" list (see edge/hw/board.py).

import json
import sys

from edge.agent import Agent


def make_source(config):
    name = config.get("source", "synthetic")
    if name == "synthetic":
        from edge.hw.synthetic import SyntheticSource

        return SyntheticSource(config["kind"], grid=config.get("grid"), utc_offset_h=config.get("utc_offset_h"))
    if name == "board":
        from edge.hw.board import build

        return build(config)
    raise ValueError("unknown source: " + name)


def main(path="/config.json", max_messages=None, duration_ms=None):
    with open(path) as f:
        config = json.load(f)
    agent = Agent(config, make_source(config))
    agent.run(max_messages, duration_ms)
    return agent


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], int(args[1]) if len(args) > 1 else None)
