"""`city up`: the whole city on this machine (being written)."""


def up() -> None:
    raise SystemExit("city up: not yet")
