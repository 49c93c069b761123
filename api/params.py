"""The request values the routers share, typed once so the OpenAPI schema says
exactly what the code accepts: kinds and metrics from the wire contract
(edge/contract.py), device ids and district slugs as patterns, durations as
a pattern that cannot overflow InfluxDB's duration type.

A request the schema calls valid is never refused for its shape; what only
the data can decide (a device that does not exist, a metric that device does
not have) answers 404 or 409."""

from typing import Annotated, Literal

from fastapi import Path, Query
from pydantic import BeforeValidator, ConfigDict, Strict

from edge import contract
from telemetry_shared.registry import STATES

# Literal[...] built from the contract, so a new kind or metric reaches every route's schema at once
Kind = Literal[tuple(contract.KINDS)]  # type: ignore[valid-type]
MetricName = Literal[tuple(contract.METRICS)]  # type: ignore[valid-type]
DeviceState = Literal[tuple(STATES)]  # type: ignore[valid-type]

# contract.valid_device_id as a pattern: 3 to 32 of a-z, 0-9 and '-', not starting with '-'
DEVICE_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{2,31}$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
# Not only white space. Python counts \x1c-\x1f and \x85 as space, ECMAScript's \s (the schema's dialect, which
# schemathesis generates from) does not: naming them makes the schema and the check agree in both.
NOT_BLANK_PATTERN = r"[^\s\x1c-\x1f\x85]"
# A bucket of at most 999 days in any unit: InfluxDB's duration (int64 ns) never overflows.
DURATION_PATTERN = (r"^([1-9][0-9]{0,9}ms|[1-9][0-9]{0,6}s|[1-9][0-9]{0,5}m|[1-9][0-9]{0,3}h"
                    r"|[1-9][0-9]{0,2}d|[1-9][0-9]?w)$")

DevicePath = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, description="a device id, e.g. wtr-0001")]
DeviceQuery = Annotated[str, Query(pattern=DEVICE_ID_PATTERN, description="a device id, e.g. wtr-0001")]
DistrictQuery = Annotated[str, Query(pattern=SLUG_PATTERN,
                                     description="a district slug of the city profile (/public/map)")]
Duration = Annotated[str, Query(pattern=DURATION_PATTERN, description="e.g. 30s, 5m, 1h, 1d, 2w (at most 999 days)")]

# Request bodies: no unknown fields, and no coercion (false is not 0.0, "1.5" is not a number), so what the
# schema calls the wrong type is refused, as schemathesis' negative tests expect.
STRICT_BODY = ConfigDict(extra="forbid", strict=True)


def _number_not_bool_or_text(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number")
    return value


# An integer in a strict body that also takes 5000.0 (JSON Schema calls it an integer), but not true or "5000"
WholeNumber = Annotated[int, Strict(False), BeforeValidator(_number_not_bool_or_text)]
