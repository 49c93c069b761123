"""The city's dashboards, as code. `all_dashboards()` is what gets generated and synced.

Storage schema read here (see DESIGN.md): measurement = device kind, tags
device and district, float fields named as in edge/contract.py; `alerts`
(tags device, district, kind, metric, rule, severity; fields state, score,
explanation, id); `ingest_stats` (tag worker; cumulative counters);
`device_status` (tags device, district, kind; rssi_dbm, battery_v, mem_free,
uptime_s).
"""

from grafana import queries as q
from grafana.model import (
    Annotation,
    Dashboard,
    Panel,
    Target,
    Threshold,
    Variable,
    field_unit,
    points_for,
    rename_by_regex,
)
from grafana.units import unit_of
from telemetry_shared.settings import get_settings

DEVICE = "$tag_device"
DISTRICT = "$tag_district"
ALL_KINDS = q.DEVICE_MEASUREMENTS

# Thresholds that the city's engineers read the panels against: the grid's and water's from the
# city profile (CITY_PROFILE), as the analytics use them.
CITY = get_settings().city
GRID = CITY.grid
VOLTAGE_BAND = (Threshold(None, "red"), Threshold(GRID.voltage_limits_v[0], "green"),
                Threshold(GRID.voltage_limits_v[1], "red"))
FREQUENCY_BAND = (Threshold(None, "red"), Threshold(GRID.frequency_limits_hz[0], "green"),
                  Threshold(GRID.frequency_limits_hz[1], "red"))
NOMINAL = f"{GRID.nominal_voltage_v:g} V, {GRID.nominal_frequency_hz:g} Hz nominal"
CO2_BANDS = (Threshold(None, "green"), Threshold(1000.0, "yellow"), Threshold(1500.0, "red"))
PRESSURE_LOW = (Threshold(None, "red"), Threshold(CITY.water.pressure_min_bar, "green"))  # taps run dry upstairs
CHLORINE_BAND = (Threshold(None, "red"), Threshold(CITY.water.chlorine_mgl[0], "green"),
                 Threshold(CITY.water.chlorine_mgl[1], "red"))
OUTAGE_VOLTS = round(0.1 * GRID.nominal_voltage_v, 1)  # under 10 % of nominal is a supply outage, not a sag
CONGESTED_KMH = 20.0


def district_variable(measurement: str) -> Variable:
    return Variable("district", "District", f'SHOW TAG VALUES FROM {measurement} WITH KEY = "district"')


def device_variable(measurement: str) -> Variable:
    return Variable("device", "Device",
                    f'SHOW TAG VALUES FROM {measurement} WITH KEY = "device" WHERE "district" =~ /^$district$/')


def alert_annotation(kind: str = "", device: bool = True) -> Annotation:
    """Analytics alerts as markers on every time series, filtered like the dashboard."""
    extra = f"\"kind\" = '{kind}'" if kind else ""
    query = ('SELECT "explanation", "score", "state", "severity", "rule", "metric", "device" FROM "alerts" '
             + q.where(device=device, extra=extra))
    return Annotation("Analytics alerts", query, text_column="explanation",
                      tags_column="severity,rule,metric,device,state")


BACKFILL_NOTE = ("Backfilled readings (sent late by a device that was offline, with their original times) are in "
                 "the line and drawn again as dots: the analytics raise no alert on them.")


def metric_panel(kind: str, metric: str, title: str, description: str, agg: str = "mean",
                 **options) -> Panel:
    """One line per device of all its readings, and dots on the intervals that hold backfilled ones."""
    return Panel(title, unit_of(metric), (
        Target(q.per_device(kind, metric, agg), DEVICE),
        Target(q.per_device(kind, metric, agg, extra=q.BACKFILLED), DEVICE + q.BACKFILLED_SUFFIX)),
        description=f"{description} {BACKFILL_NOTE}",
        overrides=(points_for(f".*{q.BACKFILLED_SUFFIX.replace('(', '[(]').replace(')', '[)]')}$"),), **options)


def backfill_panel(measurement: str, by: str = "device", device: bool = True, **options) -> Panel:
    """How many readings arrived late as backfilled history, per device (or district): where a device was
    offline, and why no alert marks a fault in those readings."""
    alias = f"$tag_{by}" + (" $measurement" if measurement == ALL_KINDS else "")
    return Panel("Backfilled readings", "short", (Target(q.backfilled(measurement, by, device), alias),),
                 stack=True, no_value="0",
                 description=f"Readings per interval that a device kept while offline and sent late (stored with "
                             f"hist=true), per {by}; 0 where every reading came live. The analytics raise no alert "
                             f"on backfilled readings: a fault in them shows in the readings but not as an alert.",
                 **options)


def district_panel(kind: str, metric: str, title: str, description: str, inner: str = "mean",
                   outer: str = "mean", device: bool = True, **options) -> Panel:
    """device=False on a dashboard without a device variable (the overview)."""
    return Panel(title, unit_of(metric), (Target(q.per_district(kind, metric, inner, outer, device), DISTRICT),),
                 description=description, **options)


def utility_dashboard(uid: str, title: str, kind: str, description: str, panels: list[Panel]) -> Dashboard:
    measurement = f'"{kind}"'
    panels = [*panels, backfill_panel(measurement, width=24)]
    return Dashboard(uid, title, description, panels,
                     [district_variable(measurement), device_variable(measurement)],
                     [alert_annotation(kind)], tags=("city", kind))


def overview() -> Dashboard:
    panels = [
        Panel("Alerts raised", "short", (Target(
            q.incidents("\"state\" = 'active'") + ' GROUP BY "severity"', "$tag_severity"),), kind="stat", width=8,
            height=5, no_value="0",
            description="Incidents (not messages: an incident sends one at every change) active in the time range, "
                        "by the severities they reached; 0 on a quiet day."),
        Panel("Samples stored", "short", (Target(
            f'SELECT count("seq") FROM {ALL_KINDS} {q.where(device=False)}', "$measurement"),),
            kind="stat", width=8, height=5,
            description="Samples written to InfluxDB in the time range, per utility."),
        Panel("Hospital beds free", "suffix: beds", (Target(
            'SELECT sum("v") FROM (SELECT last("beds_free") AS v FROM "building" '
            + q.where(device=False) + ' GROUP BY "device", "district") GROUP BY "district"', DISTRICT),),
            kind="stat", width=8, height=5,
            description="Free beds now: each ward's latest report, summed per district."),
        district_panel("water", "flow_lps", "Water flow by district", inner="mean", outer="sum", device=False,
                       description="Total flow through the district's metered mains.", stack=True),
        district_panel("power", "voltage_v", "Mean voltage by district", minimum=180, maximum=270, device=False,
                       thresholds=VOLTAGE_BAND, description=f"{NOMINAL}; the band is the limit of {GRID.standard}."),
        district_panel("building", "beds_free", "Hospital beds free by district", inner="last", outer="sum",
                       device=False, stack=True, description="Sum over wards of the latest free-bed count."),
        district_panel("traffic", "speed_kmh", "Mean traffic speed by district", device=False,
                       description="Mean of each sensor's mean speed."),
        Panel("Latest alerts", "none", (Target(
            'SELECT "severity", "rule", "metric", "state", "score", "explanation" FROM "alerts" '
            + q.where(device=False) + " ORDER BY time DESC LIMIT 50", result_format="table"),),
            kind="table", width=24, height=9, overrides=(field_unit("Time", "dateTimeAsIso"),), no_value="no alerts",
            description="The 50 most recent alert messages; none on a quiet day."),
        backfill_panel(ALL_KINDS, by="district", device=False, width=24),
    ]
    return Dashboard("city-overview", "City overview", f"{CITY.name} at a glance: every utility, every district.",
                     panels, [district_variable(ALL_KINDS)], [alert_annotation(device=False)],
                     tags=("city", "overview"))


def water() -> Dashboard:
    panels = [
        metric_panel("water", "flow_lps", "Flow", "Mean flow per meter; negative is reverse flow."),
        metric_panel("water", "pressure_bar", "Pressure", "Mains pressure per sensor.", thresholds=PRESSURE_LOW),
        Panel("Minimum night flow", "suffix: L/s", (Target(
            'SELECT min("hourly") FROM (SELECT mean("flow_lps") AS hourly FROM "water" ' + q.where()
            + ' GROUP BY time(1h), "device") WHERE $timeFilter ' + q.NIGHT_BUCKET + ', "device" fill(none)',
            DEVICE),), description="Lowest hourly mean flow of each local day (local time): when demand is least, "
                                    "what still flows is mostly leakage. A rising line is a growing leak."),
        Panel("Minimum night flow, 90 days", "suffix: L/s", (Target(
            q.rollup("water", "1h", ["flow_lps_mean"], outer="min"), DEVICE),), time_from="90d",
            description="The same from the hourly rollups, over 90 days: a slow leak shows as a rising floor."),
        metric_panel("water", "level_m", "Reservoir levels", "Water level in each reservoir or tank.", agg="last"),
        metric_panel("water", "turbidity_ntu", "Turbidity", "Drinking water should stay under 1 NTU at the tap.",
                     thresholds=(Threshold(None, "green"), Threshold(1.0, "yellow"), Threshold(5.0, "red"))),
        metric_panel("water", "chlorine_mgl", "Free chlorine", "Residual chlorine; 0.2 to 5 mg/L is safe.",
                     thresholds=CHLORINE_BAND),
        *water_balance_panels(),
    ]
    return utility_dashboard("city-water", "Water network", "water",
                             "Flow, pressure, night flow (leakage), reservoirs and water quality.", panels)


# A city whose DMAs are not set yet (city network dma) or not balanced yet has no water balance: said so
NO_BALANCE = "no water balance yet: city water-balance --write"


def water_balance_panels() -> list[Panel]:
    """The non-revenue-water engineer's panels: the daily IWA balance per district meter area, as
    `city water-balance --write` stores it (measurement water_balance, tags dma and district)."""
    def per_dma(field: str, title: str, unit: str, description: str) -> Panel:
        return Panel(title, unit, (Target(q.per_dma(field), "$tag_dma"),), time_from="30d", description=description,
                     no_value=NO_BALANCE)

    return [
        per_dma("nrw_pct", "Non-revenue water by DMA", "percent",
                "Non-revenue water each local day, % of the DMA's system input (IWA water balance)."),
        per_dma("real_losses_m3", "Real losses (leakage) by DMA", "m3",
                "Leakage each local day, m3: the minimum night flow minus the customers' metered night use, "
                "stepped where a burst started between nights. A step up is a burst."),
        per_dma("apparent_losses_m3", "Apparent losses by DMA", "m3",
                "Water losses minus real losses, m3 a day: meters that under-register, illegal connections."),
        Panel("DMAs for the leak crews", "m3", (Target(q.dma_ranking(), result_format="table"),), kind="table",
              time_from="7d", description="Each DMA's real losses, non-revenue water and system input over the "
                                          "last 7 days, leakiest first.",
              transformations=({"id": "sortBy", "options": {"sort": [{"field": "real losses m3", "desc": True}]}},),
              no_value=NO_BALANCE),
    ]


def power() -> Dashboard:
    panels = [
        district_panel("power", "voltage_v", "Voltage by district", thresholds=VOLTAGE_BAND,
                       minimum=round(0.78 * GRID.nominal_voltage_v), maximum=round(1.17 * GRID.nominal_voltage_v),
                       description=f"Mean supply voltage; {NOMINAL}, band from {GRID.standard}."),
        metric_panel("power", "voltage_v", "Voltage per feeder", "Mean voltage per meter.",
                     thresholds=VOLTAGE_BAND),
        district_panel("power", "power_kw", "Load by district", inner="mean", outer="sum", stack=True,
                       description="Active power summed over the district's meters."),
        Panel("Daily voltage extremes, 90 days", "volt", (Target(
            q.rollup("power", "1d", ["voltage_v_min", "voltage_v_max"]), "$tag_device $col"),),
            time_from="90d", thresholds=VOLTAGE_BAND,
            description="Each day's lowest and highest reading per meter, from the daily rollups."),
        metric_panel("power", "current_a", "Current", "Mean current per meter."),
        Panel("Outage readings", "short", (Target(q.count_under("power", "voltage_v", OUTAGE_VOLTS), DISTRICT),),
            description=f"Readings under {OUTAGE_VOLTS:g} V (10 % of nominal): the supply was out.", stack=True),
        metric_panel("power", "frequency_hz", "Frequency", f"Grid frequency; {NOMINAL}, band from {GRID.standard}.",
                     thresholds=FREQUENCY_BAND),
        metric_panel("power", "power_factor", "Power factor", "Under 0.85 costs the utility in losses.",
                     agg="mean", minimum=0, maximum=1,
                     thresholds=(Threshold(None, "red"), Threshold(0.85, "green"))),
        metric_panel("power", "energy_kwh", "Energy", "Metered energy (a counter).", agg="last"),
    ]
    return utility_dashboard("city-power", "Electricity", "power",
                             "Voltage by district, load, outages and power quality.", panels)


def buildings() -> Dashboard:
    panels = [
        metric_panel("building", "temperature_c", "Temperature", "Indoor air temperature."),
        metric_panel("building", "humidity_pct", "Humidity", "Relative humidity; over 70 % grows mould.",
                     minimum=0, maximum=100),
        metric_panel("building", "co2_ppm", "CO2", "Over 1000 ppm: ventilate; over 1500 ppm: act.",
                     thresholds=CO2_BANDS),
        metric_panel("building", "occupancy", "Occupancy", "People counted in the building.", agg="max"),
        Panel("Free beds per ward", "suffix: beds", (Target(
            q.latest_per_device('"building"', ["beds_free"]), DEVICE),), kind="bargauge", width=12,
            description="Each hospital ward's latest free-bed count."),
        metric_panel("building", "beds_free", "Free beds over time", "Free beds per ward.", agg="last"),
    ]
    return utility_dashboard("city-buildings", "Buildings and hospitals", "building",
                             "Indoor climate, air quality, occupancy and hospital beds.", panels)


def traffic() -> Dashboard:
    panels = [
        metric_panel("traffic", "speed_kmh", "Speed", "Mean speed per sensor."),
        metric_panel("traffic", "vehicle_count", "Vehicle counts", "Vehicles counted per interval.", agg="sum"),
        metric_panel("traffic", "occupancy_pct", "Road occupancy", "Share of time a vehicle is over the loop.",
                     minimum=0, maximum=100),
        Panel("Congestion", "short", (Target(q.count_under("traffic", "speed_kmh", CONGESTED_KMH), DISTRICT),),
            stack=True,
            description=f"Readings with mean speed under {CONGESTED_KMH:g} km/h, per district."),
    ]
    return utility_dashboard("city-traffic", "Traffic", "traffic", "Speed, counts and congestion.", panels)


def device_health() -> Dashboard:
    status = '"device_status"'
    panels = [
        Panel("Last seen", "none", (Target(
            q.latest_per_device(ALL_KINDS, ["seq"]), result_format="table"),), kind="table", width=12,
            overrides=(field_unit("Time", "dateTimeFromNow"),),
            description="Each device's latest stored sample (time) and its sequence number."),
        Panel("Samples stored", "short", (Target(
            f'SELECT count("seq") FROM {ALL_KINDS} {q.where()} GROUP BY time($__interval) fill(0)',
            "$measurement"),), stack=True,
            description="Samples stored per interval, per utility: a step down is devices falling silent "
                        "(which ones: Last seen)."),
        backfill_panel(ALL_KINDS),
        Panel("Messages received", "suffix: msg/s", (Target(q.counter_rate("received"), "$tag_worker"),),
              description="MQTT telemetry messages taken in per second, per ingest worker."),
        Panel("Rejected messages by reason", "short", (
            Target(q.counter_increase('"rejected"', by_worker=False), "all reasons"),
            Target(q.counter_increase("/^rejected_/", by_worker=False), "$col")), stack=True,
            transformations=(rename_by_regex("non_negative_difference_rejected_(.*)", "$1"),),
            description="Readings and messages sent to the dead-letter store: all reasons (0 on a healthy city) "
                        "and each reason that occurred."),
        Panel("Sequence gaps", "short", (Target(
            q.counter_increase('"sequence_gaps"'), "$tag_worker"),),
            description="Messages lost between a device and the broker (gaps in its sequence numbers)."),
        Panel("Gaps per device", "short", (Target(
            'SELECT non_negative_difference(max("sequence_gaps")) FROM "ingest_device_stats" '
            + q.where(district=False) + ' GROUP BY time($__interval), "device", "worker" fill(null)',
            "$tag_device via $tag_worker"),), no_value="0",
            description="Which devices lose messages: sequence numbers missing per interval (written only for a "
                        "device that lost some: 0 on a healthy city)."),
        Panel("Points written, spooled, replayed", "suffix: points/s", tuple(
            Target(q.counter_rate(field), f"{field} $tag_worker") for field in ("points_written", "spooled",
                                                                                 "replayed")),
            description="Spooled: InfluxDB was away and points went to disk; replayed: written back later."),
        Panel("Write latency", "s", (Target(q.mean_write_seconds(), "$tag_worker"),),
            description="Mean InfluxDB write time per interval, per worker (the time spent writing over the "
                        "writes made in that interval)."),
        Panel("Battery", "volt", (Target(
            f'SELECT mean("battery_v") FROM {status} {q.where()} GROUP BY time($__interval), "device" fill(null)',
            DEVICE),), description="Battery voltage from each device's status message."),
        Panel("Signal strength", "dBm", (Target(
            f'SELECT mean("rssi_dbm") FROM {status} {q.where()} GROUP BY time($__interval), "device" fill(null)',
            DEVICE),), thresholds=(Threshold(None, "red"), Threshold(-100.0, "yellow"), Threshold(-85.0, "green")),
            description="RSSI; under -100 dBm messages start to be lost."),
        Panel("Notifications", "short", tuple(Target(
            f'SELECT last("{field}") FROM "notify_stats" WHERE $timeFilter GROUP BY time($__interval) fill(previous)',
            field) for field in ("pending", "sent", "failed")),
            description="The API's notification outbox: pending (not yet delivered, retried with backoff), "
                        "sent, failed for good (after the give-up window, 24 h by default)."),
        Panel("Alarm load", "short", tuple(Target(
            f'SELECT last("{field}") FROM "alarm_kpis" WHERE $timeFilter GROUP BY time($__interval) fill(previous)',
            label) for field, label in (("per_operator_hour", "alarms per operator-hour"),
                                        ("per_10min_max", "worst 10 minutes"), ("flood_percent", "% time in flood"))),
            thresholds=(Threshold(None, "green"), Threshold(6.0, "yellow"), Threshold(12.0, "red")),
            description="The control room's alarm load over the last hour (api/alarms/kpis.py, written every minute): "
                        "alarms per operator-hour (EEMUA 191: 6 or fewer is manageable), the worst 10 minutes "
                        "(over 10 is a flood) and the share of 10-minute periods in flood (target under 1 %)."),
        Panel("Alarm states", "short", tuple(Target(
            f'SELECT last("{field}") FROM "alarm_kpis" WHERE $timeFilter GROUP BY time($__interval) fill(previous)',
            field) for field in ("priority_high", "priority_medium", "priority_low", "chattering", "stale", "shelved",
                                 "suppressed")),
            description="Alarms on the board in the last hour by priority (target mix 5/15/80 % high/medium/low), "
                        "chattering sources, and alarms standing over 24 h, shelved or suppressed by maintenance now."),
    ]
    return Dashboard("city-devices", "Device health", "Is every device alive, and is ingest keeping up?", panels,
                     [district_variable(ALL_KINDS), device_variable(ALL_KINDS)], [alert_annotation()],
                     tags=("city", "devices"))


def all_dashboards() -> list[Dashboard]:
    from grafana.power_board import power_quality  # it builds on this module's helpers

    return [overview(), water(), power(), power_quality(), buildings(), traffic(), device_health()]
