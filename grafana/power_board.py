"""The electricity engineers' board: EN 50160 power quality and losses per feeder.

Two sources: the raw readings (measurement `power`: 10-minute mean voltages against the EN 50160 band, the
frequency against its band), and what `city power-quality --write` stores (analytics/powerreport.py):
`feeder_losses` (tags feeder, district; one point per local day), `power_quality` (tags device, district; one
point per meter-week: pass, voltage_share_in_band, ...) and `tampering_suspects` (tags device, feeder,
district). A city whose feeders are not set or whose report has not been written says so (noValue).
"""

from analytics.en50160 import Limits
from grafana import queries as q
from grafana.boards import CITY, utility_dashboard
from grafana.model import Dashboard, Panel, Target, Threshold, field_unit

LIMITS = Limits.from_grid(CITY.grid)
V_LO, V_HI = LIMITS.voltage_band_v
F_LO, F_HI = LIMITS.frequency_band_hz
FAILED = '"pass" = 0'
NO_REPORT = "no power-quality report yet: city power-quality --from .. --to .. --write"
DAY = q.NIGHT_BUCKET  # one bucket per local day
GRID = ("an island grid (no synchronous tie to an interconnected system)" if not LIMITS.interconnected
        else "an interconnected grid")


def _losses(field: str, title: str, unit: str, description: str, **options) -> Panel:
    query = f'SELECT mean("{field}") FROM "feeder_losses" {q.where(device=False)} {DAY}, "feeder" fill(none)'
    return Panel(title, unit, (Target(query, "$tag_feeder"),), time_from="30d", no_value=NO_REPORT,
                 description=description, **options)


def power_quality() -> Dashboard:
    ten_minute = ('SELECT mean("voltage_v") AS v FROM "power" ' + q.where()
                  + ' GROUP BY time(10m), "device", "district"')
    panels = [
        Panel("Meter-weeks meeting EN 50160", "percent", (Target(
            f'SELECT 100 * mean("pass") FROM "power_quality" {q.where()} GROUP BY "district"', "$tag_district"),),
            kind="stat", width=8, height=5, time_from="30d", no_value=NO_REPORT, minimum=0, maximum=100,
            thresholds=(Threshold(None, "red"), Threshold(95.0, "yellow"), Threshold(100.0, "green")),
            description=f"Share of the meter-weeks of the last 30 days that met EN 50160 (voltage and frequency), "
                        f"per district, against {GRID}."),
        Panel("Feeder losses over the range", "none", (Target(
            'SELECT sum("loss_kwh") AS "loss kWh", sum("input_kwh") AS "input kWh", '
            f'100 * sum("loss_kwh") / sum("input_kwh") AS "loss %" FROM "feeder_losses" {q.where(device=False)} '
            'GROUP BY "feeder"', result_format="table"),), kind="table", width=16, height=5, time_from="30d",
            no_value=NO_REPORT,
            description="Per feeder over the last 30 days: the transformer's energy minus its customers' (technical "
                        "and non-technical losses), kWh and % of input. Days with a meter missing are left out."),
        _losses("loss_pct", "Loss per feeder, % of input", "percent",
                "Each local day: (transformer - customers) / transformer. A step up that stays is energy that "
                "stopped being recorded: see the tampering suspects."),
        _losses("loss_kwh", "Loss per feeder, kWh a day", "kwatth",
                "Each local day's loss in kWh: technical losses grow with the square of the load."),
        Panel("10-minute voltages outside ±10 %", "short", (Target(
            f'SELECT count("v") FROM ({ten_minute}) WHERE $timeFilter AND ("v" < {V_LO!r} OR "v" > {V_HI!r}) '
            'GROUP BY time(1h), "district" fill(0)', "$tag_district"),), stack=True, no_value="0",
            description=f"10-minute mean voltages (EN 50160 §4.2.2) outside {V_LO:g}-{V_HI:g} V, counted per hour "
                        f"and district: at most 5 % of a meter's week may be, and none under -15 % or over +10 %."),
        Panel("Voltage, 10-minute means", "volt", (Target(
            f'SELECT mean("voltage_v") FROM "power" {q.where()} GROUP BY time(10m), "device" fill(none)',
            "$tag_device"),), thresholds=(Threshold(None, "red"), Threshold(V_LO, "green"), Threshold(V_HI, "red")),
            description="The means EN 50160 judges, per meter, with the ±10 % band."),
        Panel("Frequency, lowest and highest", "hertz", (
            Target(f'SELECT min("frequency_hz") FROM "power" {q.where()} GROUP BY time($__interval) fill(none)',
                   "lowest"),
            Target(f'SELECT max("frequency_hz") FROM "power" {q.where()} GROUP BY time($__interval) fill(none)',
                   "highest")),
            thresholds=(Threshold(None, "red"), Threshold(F_LO, "green"), Threshold(F_HI, "red")),
            description=f"The system frequency's extremes in each interval; EN 50160 for {GRID}: {F_LO:g}-{F_HI:g} Hz "
                        f"99.5 % of the time."),
        Panel("Meters failing EN 50160", "none", (Target(
            'SELECT "voltage_share_in_band" AS "share of 10-min voltages in band", "voltage_min_v" AS "min V", '
            '"voltage_max_v" AS "max V", "frequency_share_in_band" AS "share of frequency in band" '
            f'FROM "power_quality" {q.where(extra=FAILED)} GROUP BY "device"',
            result_format="table"),), kind="table", width=24, height=8, time_from="30d",
            overrides=(field_unit("Time", "dateTimeAsIso"),), no_value="every meter met EN 50160",
            description="Each meter-week that failed, with the figures behind it (week start in Time)."),
        Panel("Tampering suspects", "none", (Target(
            'SELECT "rank", "unrecorded_kwh" AS "unrecorded kWh", "drop_pct" AS "share drop %" '
            f'FROM "tampering_suspects" {q.where()} GROUP BY "device", "feeder"', result_format="table"),),
            kind="table", width=24, height=8, time_from="30d", overrides=(field_unit("Time", "dateTimeAsIso"),),
            no_value="no tampering suspects",
            description="Customer meters whose share of their feeder stepped down while the feeder's loss rose by "
                        "about as much (Time: the day it began), most unrecorded energy first. Check them on site."),
    ]
    board = utility_dashboard("city-power-quality", "Power quality and losses", "power",
                              "EN 50160 weekly compliance per meter, losses per feeder and tampering suspects.", panels)
    board.time_from = "now-7d"  # EN 50160 judges weeks
    return board
