#!/usr/bin/env bash
# The scale-out test network: a client, a router running BIRD, N balancers each
# with its own petreld announcing the same VIPs over BGP, and three reals, each in
# its own network namespace. The router installs one kernel multipath route per
# VIP (ECMP, layer-4 hash). See docs/scale-out.md.
#
#   topology.sh create  PREFIX [N]  build PREFIX-client, -router, -lb1..N (default 3), -real1..3,
#                                   start BIRD in the router, the decapsulator and a test server
#                                   in every real (petreld is started by balancer.sh)
#   topology.sh destroy PREFIX      stop everything and remove PREFIX-* (idempotent)
#   topology.sh env     PREFIX      print NAME=VALUE lines (shell-sourceable)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/netns.sh
source "$ROOT/scripts/lib/netns.sh"
close_inherited_fds

readonly REAL_COUNT=3 LINK_MTU=1600 CLIENT_LINK_MTU=1500
readonly CLIENT_NET4=198.18.1 CLIENT_NET6=fd50:0:1
readonly REAL_NET4=198.18.3 REAL_NET6=fd50:0:3
# Balancer i's link to the router: 198.18.1<i>.0/24 and fd50:0:1<i>::/64 (i = 1..9).
readonly VIPS4="198.18.100.1 198.18.100.2" VIPS6="fd50:0:100::1"
readonly ROUTER_ASN=65000 BALANCER_ASN=65001
# Short timers so that tests converge in seconds (docs/scale-out.md: production values).
readonly HOLD_TIME=3 KEEPALIVE_TIME=1 CONNECT_RETRY=1

die() {
	echo "scale-out/topology.sh: $*" >&2
	exit 1
}

usage() {
	sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

check_prefix() {
	[[ "$1" =~ ^[A-Za-z0-9_]{1,12}$ ]] ||
		die "PREFIX '$1' is invalid: expected 1-12 characters from [A-Za-z0-9_]"
}

workdir() { echo "/tmp/petrel-scaleout-$1"; }

bin_dir() {
	if [[ -n "${PETREL_BIN:-}" ]]; then echo "$PETREL_BIN"; else (cd "$ROOT" && PATH=/opt/swift/usr/bin:$PATH swift build --show-bin-path); fi
}

# The router's BIRD: learns each balancer's host routes, merges equal paths into one
# kernel multipath route per VIP, and drops a balancer at once when its link goes down.
router_bird_config() {
	local n=$1 i
	cat <<CONF
router id $CLIENT_NET4.1;
protocol device { scan time 1; }
protocol kernel kernel4 { ipv4 { import none; export all; }; merge paths on; }
protocol kernel kernel6 { ipv6 { import none; export all; }; merge paths on; }
template bgp balancer {
  local as $ROUTER_ASN;
  hold time $HOLD_TIME; startup hold time $HOLD_TIME; keepalive time $KEEPALIVE_TIME;
  connect retry time $CONNECT_RETRY; error wait time 1, 5;
  graceful restart off;
  check link on;
}
CONF
	for ((i = 1; i <= n; i++)); do
		cat <<CONF
protocol bgp lb${i}_v4 from balancer { neighbor 198.18.1$i.2 as $BALANCER_ASN; ipv4 { import all; export none; }; }
protocol bgp lb${i}_v6 from balancer { neighbor fd50:0:1$i::2 as $BALANCER_ASN; ipv6 { import all; export none; }; }
CONF
	done
}

# The link from the router to balancer i (also used by balancer.sh restore).
add_balancer_link() {
	local p=$1 i=$2 router=$1-router lb=$1-lb$2
	veth "$lb" eth0 "$router" "eth-lb$i"
	ip -n "$lb" link set eth0 address "02:00:00:00:1$i:02" mtu "$LINK_MTU" up
	ip -n "$router" link set "eth-lb$i" address "02:00:00:00:1$i:01" mtu "$LINK_MTU" up
	addr "$lb" eth0 "198.18.1$i.2/24" "fd50:0:1$i::2/64"
	addr "$router" "eth-lb$i" "198.18.1$i.1/24" "fd50:0:1$i::1/64"
	# The balancer answers with XDP_TX, which veth hands to this end's NAPI ring.
	router_accepts_xdp_tx "$router" "eth-lb$i"
}

cleanup_failed_create() {
	local rc=$?
	if ((rc != 0)); then
		echo "scale-out/topology.sh: create failed (status $rc), removing $1-*" >&2
		destroy "$1" || true
	fi
	exit "$rc"
}

create() {
	local p=$1 n=$2 router=$1-router client=$1-client i dir bin
	[[ "$n" =~ ^[1-9]$ ]] || die "N must be 1..9, got '$n'"
	[[ -z "$(prefix_namespaces "$p")" ]] || die "namespaces $p-* exist: run 'topology.sh destroy $p' first"
	ensure_tools
	command -v bird >/dev/null || die "BIRD 2 is needed (apt-get install bird2; scripts/install-deps.sh does it)"
	bin=$(bin_dir)
	[[ -x "$bin/petreld" && -x "$bin/petrel" ]] || die "build Petrel first (swift build): no petreld in $bin"
	# shellcheck disable=SC2064
	trap "cleanup_failed_create $p" EXIT
	trap 'exit 130' INT TERM
	dir=$(workdir "$p")
	rm -rf "$dir"
	mkdir -p "$dir"
	echo "$n" >"$dir/balancers"
	echo "$bin" >"$dir/bin"

	ns_baseline "$client"
	ns_baseline "$router"
	for ((i = 1; i <= n; i++)); do
		ns_baseline "$p-lb$i"
		# A failed balancer's link comes back with its addresses (as after a reboot).
		in_ns "$p-lb$i" sysctl -qw net.ipv6.conf.all.keep_addr_on_down=1 net.ipv6.conf.default.keep_addr_on_down=1
	done
	for ((i = 1; i <= REAL_COUNT; i++)); do ns_baseline "$p-real$i"; done

	# Router: forwards, and spreads flows over equal paths by their layer-4 hash.
	in_ns "$router" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1

	veth "$client" eth0 "$router" eth-client
	ip -n "$client" link set eth0 address 02:00:00:00:01:02 mtu "$CLIENT_LINK_MTU" up
	ip -n "$router" link set eth-client address 02:00:00:00:01:01 mtu "$CLIENT_LINK_MTU" up
	addr "$client" eth0 "$CLIENT_NET4.2/24" "$CLIENT_NET6::2/64"
	addr "$router" eth-client "$CLIENT_NET4.1/24" "$CLIENT_NET6::1/64"
	ip -n "$client" route add default via "$CLIENT_NET4.1"
	ip -n "$client" -6 route add default via "$CLIENT_NET6::1"
	# Finished checksums: a balancer re-sends the client's frame as a fresh buffer.
	in_ns "$client" ethtool -K eth0 tx off >/dev/null

	for ((i = 1; i <= n; i++)); do add_balancer_link "$p" "$i"; done
	# shellcheck disable=SC2086
	add_reals "$router" "$p" "$REAL_COUNT" br-reals "$LINK_MTU" "$VIPS4" "$VIPS6"
	for ns in $(prefix_namespaces "$p"); do ns_no_rp_filter "$ns"; done

	router_bird_config "$n" >"$dir/router-bird.conf"
	in_ns "$router" bird -c "$dir/router-bird.conf" -s "$dir/router-bird.ctl" -P "$dir/router-bird.pid"

	# Reals: Petrel's decapsulator and the test server (answers with the real's name).
	for ((i = 1; i <= REAL_COUNT; i++)); do
		in_ns "$p-real$i" sh -c 'mount -t bpf bpf /sys/fs/bpf && exec "$0" decap attach --interface eth0 --address "$1" --address "$2"' \
			"$bin/petrel" "$REAL_NET4.1$i" "$REAL_NET6::1$i" >/dev/null
		in_ns "$p-real$i" /usr/bin/python3 "$ROOT/scripts/testhost.py" serve --name "real$i" --pidfile "$dir/real$i.pid" \
			>"$dir/real$i.log" 2>&1 &
	done
	for ((i = 1; i <= REAL_COUNT; i++)); do
		for _ in $(seq 100); do [[ -s "$dir/real$i.pid" ]] && break; sleep 0.1; done
		[[ -s "$dir/real$i.pid" ]] || die "real$i's test server did not start: $(cat "$dir/real$i.log")"
	done

	trap - EXIT INT TERM
	echo "scale-out/topology.sh: created $(prefix_namespaces "$p" | tr '\n' ' ')" >&2
}

destroy() {
	destroy_namespaces "$1"
	rm -rf "$(workdir "$1")"
}

env_vars() {
	local p=$1 dir n i
	dir=$(workdir "$p")
	n=$(cat "$dir/balancers" 2>/dev/null || echo 0)
	cat <<EOV
SO_PREFIX=$p
SO_DIR=$dir
SO_BIN=$(cat "$dir/bin" 2>/dev/null || true)
SO_BALANCERS=$n
SO_NS_CLIENT=$p-client
SO_NS_ROUTER=$p-router
SO_ROUTER_BIRD_CTL=$dir/router-bird.ctl
SO_CLIENT_IP4=$CLIENT_NET4.2
SO_CLIENT_IP6=$CLIENT_NET6::2
SO_VIPS4="$VIPS4"
SO_VIPS6="$VIPS6"
SO_REAL_IP4S="$(for ((i = 1; i <= REAL_COUNT; i++)); do printf '%s ' "$REAL_NET4.1$i"; done)"
SO_ROUTER_ASN=$ROUTER_ASN
SO_BALANCER_ASN=$BALANCER_ASN
SO_HOLD_TIME=$HOLD_TIME
EOV
}

main() {
	(($# >= 2)) || usage
	local cmd=$1 prefix=$2
	check_prefix "$prefix"
	case "$cmd" in
	create) create "$prefix" "${3:-3}" ;;
	destroy) destroy "$prefix" ;;
	env) env_vars "$prefix" ;;
	*) usage ;;
	esac
}

main "$@"
