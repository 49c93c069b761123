#!/bin/sh
# Runs Mosquitto and makes it re-read its password file (SIGHUP) whenever the
# file changes: the API rewrites it (atomically, a new inode) when a device is
# added, rotated or retired, and cannot signal a process in another container.
# Reload checks every second; the API's session cut retries for 4 s.
set -u
CONF="${MOSQUITTO_CONF:-/mosquitto/config/mosquitto.conf}"
PASSWD="${MOSQUITTO_PASSWD:-/mosquitto/auth/passwd}"
MOSQUITTO="${MOSQUITTO_BIN:-mosquitto}"

# inode (the API replaces the file), size and mtime: any rewrite changes one of them
stamp() { stat -c '%i %s %Y' "$PASSWD" 2>/dev/null || echo missing; }

"$MOSQUITTO" -c "$CONF" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null; wait "$pid"; exit $?' TERM INT
last=$(stamp)
while kill -0 "$pid" 2>/dev/null; do
    sleep 1 &
    wait $!
    now=$(stamp)
    if [ "$now" != "$last" ]; then
        kill -HUP "$pid" 2>/dev/null
        last=$now
    fi
done
wait "$pid"
exit $?
