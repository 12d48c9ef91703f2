#!/usr/bin/env bash
# Start PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) when they do not answer, and wait until both do.
# Used by .ci/run before the tests: tests/deployment needs both, and fails in CI (CI=true) when one is missing.
# The start commands are the machine's own (Debian packages, as the machine starts them before a session).
set -euo pipefail

TIMEOUT=${SERVICES_TIMEOUT:-60}
REDIS_PORT=${REDIS_PORT:-6379}  # another port only to try this script beside the running Redis

postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; }

start_postgres() {
    local version
    for version in $(ls /etc/postgresql); do
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
}

start_redis() {
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
        --dir /var/lib/redis --logfile "/var/log/redis/ci-$REDIS_PORT.log"
}

ensure() {  # name, probe, start command
    local name=$1 probe=$2 start=$3 waited=0
    if "$probe"; then
        echo "$name: up"
        return 0
    fi
    echo "$name: not answering, starting it"
    "$start"
    until "$probe"; do
        if [ "$waited" -ge "$TIMEOUT" ]; then
            echo "$name: still not answering after ${TIMEOUT}s" >&2
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    echo "$name: up after ${waited}s"
}

status=0
ensure PostgreSQL postgres_up start_postgres || status=1
ensure Redis redis_up start_redis || status=1
exit $status
