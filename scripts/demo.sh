#!/usr/bin/env bash
# The Petrel demo: builds Petrel, creates a small network in namespaces (a client,
# a router, the load balancer and three reals), starts petreld with
# config/demo.yaml, sends real TCP and UDP connections to every VIP and prints
# which real answered each, and Petrel's counters. Replies go from the reals
# straight to the client (direct server return). Tears everything down; exits 0
# only if every connection was answered. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CONNECTIONS=${CONNECTIONS:-200}
source scripts/lib/demo.sh demo.sh "XDP and network namespaces"

PREFIX=demo$$
WORK=$(mktemp -d /tmp/petrel-demo.XXXXXX)
DAEMON_PID=
FLOWS_PID=
cleanup() {
    set +e
    if [ -n "$FLOWS_PID" ]; then kill "$FLOWS_PID" 2>/dev/null; wait "$FLOWS_PID" 2>/dev/null; fi
    if [ -n "$DAEMON_PID" ]; then kill "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null; fi
    scripts/topology.sh destroy "$PREFIX" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Creating the network ($PREFIX-client, -router, -lb, -real1..3)"
scripts/topology.sh create "$PREFIX" >&2
eval "$(scripts/topology.sh env "$PREFIX")"

say "Reals: attaching Petrel's decapsulator and starting the test servers"
i=1
for ns in $TOPO_NS_REALS; do
    ip4_var=TOPO_REAL${i}_IP4
    ip6_var=TOPO_REAL${i}_IP6
    # bpffs in the namespace lets libxdp use its dispatcher (other XDP programs can share eth0).
    ip netns exec "$ns" sh -c 'mount -t bpf bpf /sys/fs/bpf && exec "$0" decap attach --interface "$1" --address "$2" --address "$3"' \
        "$BIN/petrel" "$TOPO_REAL_IFACE" "${!ip4_var}" "${!ip6_var}" >&2
    ip netns exec "$ns" /usr/bin/python3 scripts/testhost.py serve --name "real$i" --pidfile "$WORK/real$i.pid" \
        >"$WORK/real$i.log" 2>&1 &
    i=$((i + 1))
done

say "Load balancer: starting petreld --config config/demo.yaml in $TOPO_NS_LB"
SOCKET=/run/petrel/demo.sock
rm -f "$SOCKET"
ip netns exec "$TOPO_NS_LB" sh -c 'mount -t bpf bpf /sys/fs/bpf && exec "$0" --config "$1"' \
    "$BIN/petreld" "$ROOT/config/demo.yaml" >"$WORK/petreld.log" 2>&1 &
DAEMON_PID=$!

wait_for() {  # wait_for DESCRIPTION COMMAND...: up to 20 s
    local what=$1; shift
    for _ in $(seq 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "demo: timed out waiting for $what" >&2
    return 1
}
for n in 1 2 3; do wait_for "real$n's server" test -s "$WORK/real$n.pid"; done
if ! wait_for "petreld's admin socket" "$BIN/petrel" --socket "$SOCKET" status; then
    cat "$WORK/petreld.log" >&2
    exit 1
fi
"$BIN/petrel" --socket "$SOCKET" status >&2

# The flow log while the clients connect: the first decisions, as JSON lines (bounded: 8 lines or 30 s).
"$BIN/petrel" --socket "$SOCKET" flows --follow --count 8 --seconds 30 >"$WORK/flows.jsonl" 2>"$WORK/flows.err" &
FLOWS_PID=$!
sleep 1  # time for the follower to connect

say "Clients: $CONNECTIONS connections to every VIP"
# name | VIP | port | protocol
VIPS=(
    "web over IPv4 (4in4)|198.18.100.1|80|tcp"
    "dns over IPv4 (4in4)|198.18.100.1|53|udp"
    "web over IPv6 (6in6)|fd50:0:100::1|80|tcp"
    "any port, IPv6 reals (4in6)|198.18.100.2|8080|tcp"
)
sent=0
answered=0
declare -A reals_seen=()
printf '\n%-30s %-22s %9s   %s\n' "VIP" "address" "answered" "answers per real"
for entry in "${VIPS[@]}"; do
    IFS='|' read -r name address port proto <<<"$entry"
    # The 4in6 VIP takes every port; the test servers listen on 80.
    server_port=$port; [ "$port" = 8080 ] && server_port=80
    result=$(ip netns exec "$TOPO_NS_CLIENT" /usr/bin/python3 scripts/testhost.py client \
        --vip "$address" --port "$server_port" --proto "$proto" --count "$CONNECTIONS" --compact)
    read -r vip_sent vip_answered per_real <<<"$(/usr/bin/python3 -c '
import json, sys
r = json.loads(sys.argv[1])
per = ", ".join(f"{k}: {v}" for k, v in sorted(r["by_real"].items()))
print(r["sent"], r["answered"], per)' "$result")"
    sent=$((sent + vip_sent))
    answered=$((answered + vip_answered))
    for real in $(/usr/bin/python3 -c 'import json,sys; print(" ".join(json.loads(sys.argv[1])["by_real"]))' "$result"); do
        reals_seen[$real]=1
    done
    label="$proto/$address:$port"
    [ "$port" = 8080 ] && label="$proto/$address:*"
    printf '%-30s %-22s %4s/%-4s   %s\n' "$name" "$label" "$vip_answered" "$vip_sent" "$per_real"
done

say "The flow log: the first decisions (petrel flows --follow --count 8)"
wait "$FLOWS_PID" || true
FLOWS_PID=
cat "$WORK/flows.jsonl"
cat "$WORK/flows.err" >&2

say "Petrel's counters (petrel stats)"
"$BIN/petrel" --socket "$SOCKET" stats

say "Direct server return: the load balancer saw only client-to-VIP traffic"
lb_rx=$(ip netns exec "$TOPO_NS_LB" cat /sys/class/net/eth0/statistics/rx_packets)
echo "packets received by the load balancer's eth0: $lb_rx (requests only; every reply went real -> client)"

echo "demo: $answered/$sent connections answered by ${#reals_seen[@]} reals"
[ "$answered" = "$sent" ]
