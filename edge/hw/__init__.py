# The hardware layer. A source has read() -> ({metric: value}, quality) and
# health() -> {"rssi_dbm": ..., "battery_v": ...} (keys it cannot measure are
# left out). Real drivers take their bus or pin in the constructor; the
# synthetic source stands in for them on the unix port and in the simulator.
