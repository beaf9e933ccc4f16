#!/usr/bin/env bash
# Petrel failover demo: the demo network with health checks (config/failover-demo.yaml).
# Stops real2's server, measures how long until petreld takes it out of new
# connections, shows that clients no longer reach it, starts the server again and
# measures how long until it is back. Tears everything down; exits 0 only if the
# failover and the recovery both happened as expected. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CONNECTIONS=${CONNECTIONS:-90}
source scripts/lib/demo.sh failover.sh "XDP, tc and network namespaces"

PREFIX=fo$$
WORK=$(mktemp -d /tmp/petrel-failover.XXXXXX)
SOCKET=/run/petrel/failover.sock
DAEMON_PID=
declare -A SERVER_PIDS=()
cleanup() {
    set +e
    for pid in "${SERVER_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    if [ -n "$DAEMON_PID" ]; then kill "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; fi
    scripts/topology.sh destroy "$PREFIX" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

petrel() { "$BIN/petrel" --socket "$SOCKET" "$@"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

start_server() {  # start_server N: testhost.py on real N, port 80
    local n=$1
    rm -f "$WORK/real$n.pid"
    ip netns exec "$PREFIX-real$n" /usr/bin/python3 scripts/testhost.py serve --name "real$n" --udp-port 0 \
        --pidfile "$WORK/real$n.pid" >>"$WORK/real$n.log" 2>&1 &
    SERVER_PIDS[$n]=$!
    for _ in $(seq 100); do [ -s "$WORK/real$n.pid" ] && return 0; sleep 0.1; done
    echo "failover: real$n's server did not start" >&2
    return 1
}

# in_service REAL: "true" or "false" from GET /v1/health for the IPv4 web VIP.
in_service() {
    curl -s --unix-socket "$SOCKET" http://petreld/v1/health | /usr/bin/python3 -c '
import json, sys
for r in json.load(sys.stdin)["reals"]:
    if r["vip"] == "tcp/198.18.100.1:80" and r["real"] == sys.argv[1]:
        print("true" if r["in_service"] else "false")' "$1"
}

wait_until() {  # wait_until REAL true|false: up to 10 s
    for _ in $(seq 500); do [ "$(in_service "$1")" = "$2" ] && return 0; sleep 0.02; done
    echo "failover: $1 in_service never became $2" >&2
    return 1
}

clients() {  # clients LABEL: CONNECTIONS connections to the IPv4 web VIP, answers per real
    ip netns exec "$PREFIX-client" /usr/bin/python3 scripts/testhost.py client --vip 198.18.100.1 --port 80 \
        --proto tcp --count "$CONNECTIONS" --compact | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
per = ", ".join(f"{k}: {v}" for k, v in sorted(r["by_real"].items()))
print("%-28s %d/%d answered   %s" % (sys.argv[1], r["answered"], r["sent"], per))
open(sys.argv[2], "w").write(json.dumps(r["by_real"]))' "$1" "$WORK/last.json"
}
reached() { /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], 0))' "$WORK/last.json" "$1"; }

say "Creating the network ($PREFIX-client, -router, -lb, -real1..3)"
scripts/topology.sh create "$PREFIX" >&2
for n in 1 2 3; do
    ip netns exec "$PREFIX-real$n" sh -c 'mount -t bpf bpf /sys/fs/bpf && exec "$0" decap attach --interface eth0 --address "$1" --address "$2"' \
        "$BIN/petrel" "198.18.3.1$n" "fd50:0:3::1$n" >&2
    start_server "$n"
done

say "Starting petreld --config config/failover-demo.yaml in $PREFIX-lb"
rm -f "$SOCKET"
ip netns exec "$PREFIX-lb" sh -c 'mount -t bpf bpf /sys/fs/bpf && exec "$0" --config "$1"' \
    "$BIN/petreld" "$ROOT/config/failover-demo.yaml" >"$WORK/petreld.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 200); do petrel status >/dev/null 2>&1 && break; sleep 0.1; done
petrel status >/dev/null || { cat "$WORK/petreld.log" >&2; exit 1; }
sleep 1.2   # the first probes of every real
petrel real list
echo
clients "every real up"

say "Stopping real2's server (SIGKILL): its host stays up, nothing listens on the VIP"
start=$(now)
kill -KILL "${SERVER_PIDS[2]}"
wait "${SERVER_PIDS[2]}" 2>/dev/null || true
unset 'SERVER_PIDS[2]'
wait_until 198.18.3.12 false
detection=$(since "$start")
echo "real2 out of service after ${detection} s (bound: fall × interval + timeout = 2 × 0.5 + 0.25 = 1.25 s)"
clients "real2 down"
after_down=$(reached real2)
petrel real list tcp/198.18.100.1:80
grep -E "real down|health change applied" "$WORK/petreld.log" | sed 's/^/petreld: /' | head -4

say "Starting real2's server again"
start_server 2
start=$(now)   # from the moment it listens
wait_until 198.18.3.12 true
recovery=$(since "$start")
echo "real2 back in service after ${recovery} s after it listened (rise passing probes: between (rise - 1) × interval = 0.5 s and rise × interval + timeout = 1.25 s)"
clients "real2 back"
after_up=$(reached real2)
grep -E "real up" "$WORK/petreld.log" | sed 's/^/petreld: /' | head -2

echo
echo "failover: real2 detected down in ${detection} s, back in ${recovery} s; connections to it while down: $after_down, after: $after_up"
[ "$after_down" = 0 ] && [ "$after_up" -gt 0 ]
