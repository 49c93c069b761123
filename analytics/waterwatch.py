"""New bursts in the district meter areas, raised through the alert path every analytics alert takes.

Every `period_s` the watch reads the last `lookback_days` of the DMAs' meters from InfluxDB (15-minute
means: analytics/waterdata.py), finds the bursts (analytics/water.py find_bursts) and sends each burst found
since its last look as one alert (`AlertOutput`: the MQTT alert topic, which the API stores and the control
room shows, and InfluxDB's `alerts` measurement, Grafana's annotations). The alert is on the DMA's first
inlet meter (alerts are per device), rule `dma_burst`, and names the DMA and the rise in L/s. It stays
active until someone resolves it in the control room (a burst is work for a crew, not a state that clears
by itself). The watch runs on a thread of its own, beside the stream; it keeps only the time it last looked,
so after a restart it looks back one period.
"""

import logging
import threading
import time

import numpy as np

from analytics.incidents import AlertOutput
from analytics.water import WaterParams, dma_flows, find_bursts
from analytics.waterdata import STEP_MS, fetch_flows
from edge import contract
from telemetry_shared.influx import InfluxError, InfluxQL
from telemetry_shared.registry import Registry

log = logging.getLogger("analytics")

RULE = "dma_burst"
DAY_MS = 86_400_000


class BurstWatch:
    def __init__(self, registry: Registry, influx: InfluxQL, output: AlertOutput, params: WaterParams,
                 period_s: float = 900.0, lookback_days: int = 8):
        self.registry = registry
        self.influx = influx
        self.output = output
        self.params = params
        self.period_s = period_s
        self.lookback_days = lookback_days
        self.looked_ms: int | None = None  # bursts up to this time were sent
        self.sent = 0

    def check(self, now_ms: int) -> list[dict]:
        """Send an alert for each burst found since the last look (the last period on the first); returns them."""
        topology = self.registry.topology("water")
        end = now_ms - now_ms % STEP_MS  # the last closed 15 minutes
        since = self.looked_ms if self.looked_ms is not None else end - int(self.period_s * 1000)
        if len(topology.ids) == 0:
            self.looked_ms = end
            return []
        start = end - self.lookback_days * DAY_MS
        values = fetch_flows(self.influx, topology.meters, start, end)
        inlet, customer = topology.role == "inlet", topology.role == "customer"
        flows = dma_flows(values[inlet], topology.network_of[inlet], values[customer], topology.network_of[customer],
                          topology.parent)
        times = start + STEP_MS * np.arange(values.shape[1], dtype=np.int64)
        found = find_bursts(flows, times, STEP_MS, self.params)
        first_inlet = {int(row): str(meter) for meter, row in
                       reversed(list(zip(topology.meters[inlet], topology.network_of[inlet], strict=True)))}
        messages = []
        for row, t_ms, rise in zip(found.dma, found.t_ms, found.rise_lps, strict=True):
            if not since < t_ms <= end:
                continue
            message = self._message(str(topology.ids[row]), first_inlet[int(row)], int(t_ms), float(rise))
            self.output.send(message)
            messages.append(message)
        self.looked_ms = end
        self.sent += len(messages)
        return messages

    def _message(self, dma: str, device: str, t_ms: int, rise_lps: float) -> dict:
        district = self.registry.get(device).district
        params = {"dma": dma, "rise": round(rise_lps, 2)}
        return {"id": f"burst-{dma}-{t_ms // 1000}"[:64], "device": device, "kind": "water", "district": district,
                "metric": "flow_lps", "rule": RULE, "state": "active", "severity": "warning",
                "score": 0.9, "observed": round(rise_lps, 3), "expected": 0.0, "started_ms": t_ms,
                "updated_ms": t_ms,
                "explanation": f"DMA {dma}: a new burst? Its unaccounted flow rose by {rise_lps:.2f} L/s "
                               "within the hour (inflow minus the customers' metered flow).",
                "message": {"key": "explain.dma_burst", "params": params}}

    def run(self, stopping: threading.Event) -> None:
        """Check every period_s until `stopping` is set; a failed look is logged and tried at the next period."""
        wait_s = 0.0  # the first look at once
        while not stopping.wait(wait_s):
            wait_s = self.period_s
            try:
                self.check(int(time.time() * 1000))
            except (InfluxError, OSError, contract.ContractError):
                log.exception("the DMA burst watch could not look this time")
            except Exception:  # noqa: BLE001 - a bug in one look must not end the watch until a restart
                log.exception("the DMA burst watch failed unexpectedly; looking again at the next period")
