#!/usr/bin/env bash
# The scale-out demo: builds Petrel, creates a network of a client, a router running
# BIRD, three balancers (each its own petreld announcing the same VIPs over BGP) and
# three reals; sends connections through the ECMP tier, then fails one balancer hard
# (link down, petreld and BIRD killed) while connections are open, and checks that
# every one of them keeps working. Tears everything down. Needs root.
# The last line is the summary; exits 0 only if every connection was answered and
# every open connection was kept.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CONNECTIONS=${CONNECTIONS:-300}   # new connections before and after the failure (each)
OPEN=${OPEN:-250}                 # long-lived connections held across the failure
BALANCERS=3
source scripts/lib/demo.sh demo-scale-out.sh "XDP and network namespaces"
export PETREL_BIN=$BIN

PREFIX=sodemo$$
HOLD_OUT=$(mktemp /tmp/petrel-scaleout-demo.XXXXXX)
cleanup() {
    set +e
    scripts/scale-out/topology.sh destroy "$PREFIX" >/dev/null 2>&1
    rm -f "$HOLD_OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "Creating the network: client, router (BIRD, ECMP), $BALANCERS balancers, 3 reals"
scripts/scale-out/topology.sh create "$PREFIX" "$BALANCERS" >&2
eval "$(scripts/scale-out/topology.sh env "$PREFIX")"
for i in $(seq "$BALANCERS"); do scripts/scale-out/balancer.sh start "$PREFIX" "$i"; done
for i in $(seq "$BALANCERS"); do scripts/scale-out/balancer.sh wait "$PREFIX" "$i"; done
scripts/scale-out/balancer.sh wait-paths "$PREFIX" 198.18.100.1 "$BALANCERS"
"$SO_BIN/petrel" --socket "$SO_DIR/lb1.sock" status >&2
say "The router's route to the VIP: one next hop per balancer"
ip -n "$SO_NS_ROUTER" route show 198.18.100.1 >&2

forwarded() {  # forwarded I: packets balancer I has forwarded so far
    "$SO_BIN/petrel" --socket "$SO_DIR/lb$1.sock" stats --json |
        /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["global"]["forward"])'
}
connections() {  # connections N: N new TCP connections to the VIP; prints "sent answered"
    ip netns exec "$SO_NS_CLIENT" /usr/bin/python3 scripts/testhost.py client \
        --vip 198.18.100.1 --port 80 --proto tcp --count "$1" --compact |
        /usr/bin/python3 -c 'import json, sys; r = json.load(sys.stdin); print(r["sent"], r["answered"])'
}

say "Clients: $CONNECTIONS connections through the tier"
declare -a before
for i in $(seq "$BALANCERS"); do before[i]=$(forwarded "$i"); done
read -r sent answered <<<"$(connections "$CONNECTIONS")"
used=0
for i in $(seq "$BALANCERS"); do
    grew=$(($(forwarded "$i") - before[i]))
    echo "balancer $i forwarded $grew packets" >&2
    ((grew > 0)) && used=$((used + 1))
done

say "Failing balancer 2 hard (link down, petreld and BIRD killed) with $OPEN connections open"
ip netns exec "$SO_NS_CLIENT" /usr/bin/python3 scripts/testhost.py client --vip 198.18.100.1 --port 80 --proto tcp \
    --hold --count "$OPEN" --rounds 25 --interval 0.2 --timeout 5 --max-failures "$OPEN" --compact >"$HOLD_OUT" &
HOLD_PID=$!
sleep 1.5
failed_at=$(date +%s%N)
scripts/scale-out/balancer.sh fail "$PREFIX" 2
scripts/scale-out/balancer.sh wait-paths "$PREFIX" 198.18.100.1 $((BALANCERS - 1))
converged_ms=$((($(date +%s%N) - failed_at) / 1000000))
wait "$HOLD_PID" || true
read -r open kept <<<"$(/usr/bin/python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(r["connections"], sum(1 for c in r["per_connection"] if c["same_real"]))' "$HOLD_OUT")"
echo "the router dropped balancer 2 ${converged_ms} ms after the failure; $kept/$open open connections kept their real" >&2
ip -n "$SO_NS_ROUTER" route show 198.18.100.1 >&2

say "Clients: $CONNECTIONS more connections through the remaining balancers"
read -r sent2 answered2 <<<"$(connections "$CONNECTIONS")"
sent=$((sent + sent2))
answered=$((answered + answered2))

echo "scale-out: $answered/$sent connections answered through $used balancers; $kept/$open open connections kept when one balancer failed"
[ "$answered" = "$sent" ] && [ "$kept" = "$open" ] && [ "$used" = "$BALANCERS" ]
