# The device firmware. MicroPython code that also runs on CPython, so the
# simulator and the servers share it. `edge.contract` is the wire contract.
