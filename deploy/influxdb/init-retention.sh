#!/bin/bash
# Sourced once by the influxdb:1.8 image's init-influxdb.sh on its first start
# (an empty volume), from /docker-entrypoint-initdb.d, after it created the
# database and users from the INFLUXDB_* variables; it provides $INFLUX_CMD
# ("influx ... -execute "). Being sourced, it must not `set -e` or `exit 0`:
# an `exit 1` here fails the init, which is what a bad value deserves.
# Raw readings are kept CITY_RAW_RETENTION (default 90d); the "rollups" policy
# keeps hourly and daily rollups for ever.
CITY_DB="${INFLUXDB_DB:-city}"
CITY_RETENTION="${CITY_RAW_RETENTION:-90d}"
case "$CITY_RETENTION" in *[!0-9hdwINF]*|"") CITY_RETENTION="bad:$CITY_RETENTION" ;; esac  # one line, no other chars
if [ -z "${INFLUX_CMD:-}" ] || ! printf '%s' "$CITY_RETENTION" | grep -Eqx 'INF|[0-9]+[hdw]'; then
    echo "init-retention: CITY_RAW_RETENTION must look like 90d, 12w or INF (and INFLUX_CMD be set)," \
         "not '${CITY_RAW_RETENTION:-}'" >&2
    exit 1
fi
# Shard groups no longer than the policy keeps data, as ingest/rollup.py's shard_duration chooses them.
CITY_SHARD=7d
if [ "$CITY_RETENTION" != INF ]; then
    CITY_HOURS=${CITY_RETENTION%?}
    case "$CITY_RETENTION" in
        *d) CITY_HOURS=$((CITY_HOURS * 24)) ;;
        *w) CITY_HOURS=$((CITY_HOURS * 168)) ;;
    esac
    if [ "$CITY_HOURS" -lt 48 ]; then
        CITY_SHARD=1h
    elif [ "$CITY_HOURS" -le 4320 ]; then
        CITY_SHARD=1d
    fi
fi
$INFLUX_CMD "ALTER RETENTION POLICY \"autogen\" ON \"$CITY_DB\" DURATION $CITY_RETENTION SHARD DURATION $CITY_SHARD DEFAULT" \
    || exit 1
$INFLUX_CMD "CREATE RETENTION POLICY \"rollups\" ON \"$CITY_DB\" DURATION INF REPLICATION 1" || exit 1
echo "init-retention: $CITY_DB keeps raw readings $CITY_RETENTION, rollups for ever"
