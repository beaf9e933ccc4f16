/* Petrel's data-plane ABI: every map key and value layout, the flags and the
 * counter reasons. This one header is included by the BPF programs and imported
 * by Swift (module CPetrelABI), so the two sides cannot drift apart.
 *
 * Byte order: fields named *_be hold network byte order exactly as on the wire;
 * every other integer is in host order.
 */
#ifndef PETREL_ABI_H
#define PETREL_ABI_H

#include <linux/types.h>

/* ---- Sizes and limits ---------------------------------------------------- */

/* Defaults; the control plane may resize the maps before loading. */
#define PETREL_DEFAULT_MAX_VIPS        512
#define PETREL_DEFAULT_MAX_REALS       4096
#define PETREL_DEFAULT_RING_SIZE       65537
#define PETREL_DEFAULT_CONN_TABLE_SIZE 65536
#define PETREL_MAX_CPUS                128

/* Real id 0 means "no real": an empty ring slot or a removed real. */
#define PETREL_NO_REAL 0

/* Seed shared by the flow hash in C and in Swift (Petrel.FlowHash). */
#define PETREL_FLOW_HASH_SEED 0x9e3779b9u

/* ---- Address families and VIP flags -------------------------------------- */

#define PETREL_FAMILY_IPV4 4
#define PETREL_FAMILY_IPV6 6

/* Hash the flow without its source port: all connections of one client go to one real. */
#define PETREL_VIP_HASH_NO_SRC_PORT   (1u << 0)
/* Skip the connection table: every packet is placed by the ring alone. */
#define PETREL_VIP_LRU_BYPASS         (1u << 1)
/* Hash on the destination port only: every client of one port goes to one real. */
#define PETREL_VIP_HASH_DST_PORT_ONLY (1u << 2)
/* A QUIC service (UDP): short-header packets go to the real whose server id their
 * destination connection ID carries (Petrel CID format v1, docs/quic.md). */
#define PETREL_VIP_QUIC               (1u << 3)
#define PETREL_VIP_KNOWN_FLAGS        0xfu
/* Set by the control plane (not an operator flag) when the VIP has source routes:
 * only such VIPs look up the source_routes trie (see petrel_source_route_key). */
#define PETREL_VIP_SOURCE_ROUTES      (1u << 4)

/* Real flags (petrel_real.flags). */
/* Reach the real through GUE (UDP) instead of IP-in-IP. */
#define PETREL_REAL_GUE               (1u << 0)
#define PETREL_REAL_KNOWN_FLAGS       0x1u

/* ---- The VIP address filter ------------------------------------------------ */

/* An array of PETREL_ADDR_FILTER_SLOTS words indexed by petrel_addr_filter_slot()
 * of a destination address. Each word ORs the PETREL_ADDR_* bits of every VIP
 * address that falls into that slot, so a zero word proves the address has no
 * VIP: traffic that is not ours is passed after one array read, and the
 * port-wildcard lookup is made only where a wildcard VIP may exist. */
#define PETREL_ADDR_FILTER_SLOTS   65536u
#define PETREL_ADDR_VIP            (1u << 0)  /* some VIP has an address in this slot */
#define PETREL_ADDR_TCP_WILDCARD   (1u << 1)  /* ... and one of them is a port-wildcard TCP VIP */
#define PETREL_ADDR_UDP_WILDCARD   (1u << 2)  /* ... a port-wildcard UDP VIP */
/* ... and a VIP there must be looked up before the connection tables: it is
 * lru_bypass or quic, or an exact VIP shares its address and protocol with a
 * port-wildcard one (which of the two a flow belongs to can change). Without it,
 * a packet of a known flow is forwarded from this CPU's table without a VIP lookup
 * (see vip_generations). */
#define PETREL_ADDR_VIP_FIRST      (1u << 3)

/* The address's words as in petrel_vip_key.addr_be (IPv4: w1..w3 are zero),
 * folded and spread by a multiplicative hash; the top 16 bits pick the slot. */
static inline __u32 petrel_addr_filter_slot(__u32 w0, __u32 w1, __u32 w2, __u32 w3)
{
	return ((w0 ^ w1 ^ w2 ^ w3) * 0x9e3779b1u) >> 16;
}

/* A flow hash's slot on a ring of ring_size slots: a multiply and a shift,
 * spread like hash % ring_size but without a division. */
static inline __u32 petrel_ring_slot(__u32 hash, __u32 ring_size)
{
	return (__u32)(((__u64)hash * ring_size) >> 32);
}

/* ---- Map layouts ----------------------------------------------------------- */

/* IPv4 VIPs (map vips_v4): 8 bytes, so the kernel hashes two words. */
struct petrel_vip_key_v4 {
	__be32 addr_be;
	__be16 port_be;      /* 0: the VIP takes every port of the address */
	__u8   protocol;     /* IPPROTO_TCP or IPPROTO_UDP */
	__u8   pad;
};

/* IPv6 VIPs (map vips_v6). family is always PETREL_FAMILY_IPV6 there. */
struct petrel_vip_key {
	__be32 addr_be[4];
	__be16 port_be;      /* 0: the VIP takes every port of the address */
	__u8   protocol;     /* IPPROTO_TCP or IPPROTO_UDP */
	__u8   family;       /* PETREL_FAMILY_IPV4 or PETREL_FAMILY_IPV6 */
};

struct petrel_vip_meta {
	__u32 flags;         /* PETREL_VIP_* */
	__u32 vip_index;     /* this VIP's entry in vip_stats and vip_generations */
	__u32 ring_row;      /* this VIP's current row in the ring map */
	__u32 generation;    /* vip_generations[vip_index] while this VIP holds the index */
};

/* Map vip_generations, indexed by vip_index: a generation per index, bumped when
 * the index is given to a VIP and again when that VIP is removed. A connection
 * entry names the VIP that decided by index and generation; while the two still
 * agree, that VIP is still there and is still the flow's VIP, so a known flow's
 * packet is forwarded without looking its VIP up (unless PETREL_ADDR_VIP_FIRST). */

/* Reals are shared between VIPs and indexed by id (1 .. max_reals-1). */
struct petrel_real {
	__be32 addr_be[4];
	__u8   family;       /* 0: slot unused */
	__u8   flags;        /* PETREL_REAL_* */
	__u8   pad[2];
	__u32  generation;   /* bumped when the id is reused, so stale connections re-decide */
};

/* Connection-table key of an IPv4 flow (tables conn_*_v4): 16 bytes. */
struct petrel_flow_key_v4 {
	__be32 src_be;
	__be32 dst_be;
	__be16 src_port_be;
	__be16 dst_port_be;
	__u8   protocol;
	__u8   pad[3];
};

/* A client's flow towards a VIP; the key of the IPv6 connection tables
 * (conn_*_v6). An IPv4 address sits in the first word, the others are zero. */
struct petrel_flow_key {
	__be32 src_be[4];
	__be32 dst_be[4];
	__be16 src_port_be;
	__be16 dst_port_be;
	__u8   protocol;
	__u8   family;
	__u8   pad[2];
};

struct petrel_conn {
	__u32 real_id;
	__u32 real_generation;
	__u32 flow_hash;     /* kept so a known flow needs no hashing (outer source, flow label) */
	__u32 vip_index;     /* the VIP that decided (petrel_vip_meta.vip_index) ... */
	__u32 vip_generation;/* ... and its generation then (see vip_generations) */
};

/* The flow cache (maps flow_cache_v4 / flow_cache_v6): per CPU, a direct-mapped
 * array of 1 << flow_cache_shift copies of this CPU's connection-table entries,
 * indexed by a multiply-shift of the flow. A known flow's packet finds its entry
 * there with an inlined array read and a key compare, where the table costs the
 * kernel's hash, bucket walk and calls. Written wherever this CPU's table is, so
 * a slot holds what the table held for its flow, or an entry the table has since
 * evicted (the flow then stays on its real); every use checks the entry as a
 * table entry is checked (VIP and real generations). */

/* The caches' sizes follow the limits (DataPlaneLimits.flowCacheShift and
 * vipCacheShift): a flow-cache slot per 8 connection-table entries and two
 * VIP-cache slots per VIP, rounded up to a power of two within these bounds
 * (creating a per-CPU array costs about a millisecond per 1,000 slots, so the
 * VIP cache, which only new flows use, stops at 8,192). The defaults are the
 * sizes for the default limits (and the maps' sizes in the object, before the
 * loader sets them). */
#define PETREL_CACHE_MIN_SHIFT            10
#define PETREL_FLOW_CACHE_MAX_SHIFT       16
#define PETREL_VIP_CACHE_MAX_SHIFT        13
#define PETREL_FLOW_CACHE_ENTRIES_PER_SLOT 8
#define PETREL_VIP_CACHE_SLOTS_PER_VIP    2
#define PETREL_DEFAULT_FLOW_CACHE_SHIFT   13
#define PETREL_DEFAULT_VIP_CACHE_SHIFT    10

struct petrel_flow_cache_v4 {
	struct petrel_flow_key_v4 key;
	struct petrel_conn conn;   /* real_id PETREL_NO_REAL: an empty or cleared slot */
	__u32 pad;
};

struct petrel_flow_cache_v6 {
	struct petrel_flow_key key;
	struct petrel_conn conn;
	__u32 pad;
};

/* The shared connection tables (maps conn_shared_v4 / conn_shared_v6): arrays of
 * sets of PETREL_SHARED_TABLE_WAYS entries, shared by every CPU. A new decision
 * (a SYN) is written here with plain stores, where a kernel LRU map's insert
 * costs locks, list moves and calls: two thirds of a SYN's cost. A flow's set is
 * petrel_shared_set(); a full set gives its oldest entry to a new flow. CPUs may
 * write the same entry at once, so every entry carries a check word over its
 * key and tail: a reader copies the tail and uses it only if the check over its
 * own key and that copy matches (a torn entry reads as no entry, and the ring
 * decides). The per-CPU tables stay kernel LRU maps: they keep established
 * flows, the shared ones hand a new flow over until its CPU's table learns it
 * (choice_from_tables). */
#define PETREL_SHARED_TABLE_WAYS 4

/* What an entry holds besides its key, and its check covers. */
struct petrel_shared_tail {
	struct petrel_conn conn;
	__u32 written;   /* low 32 bits of jiffies when written: a full set replaces its oldest */
};

struct petrel_shared_entry_v4 {
	struct petrel_flow_key_v4 key;
	struct petrel_shared_tail tail;
	__u64 check;     /* petrel_shared_check(key, tail); 0: an empty entry */
};

struct petrel_shared_entry_v6 {
	struct petrel_flow_key key;
	struct petrel_shared_tail tail;
	__u64 check;
};

struct petrel_shared_set_v4 {
	struct petrel_shared_entry_v4 way[PETREL_SHARED_TABLE_WAYS];
};

struct petrel_shared_set_v6 {
	struct petrel_shared_entry_v6 way[PETREL_SHARED_TABLE_WAYS];
};

#define PETREL_GOLDEN_64 0x9e3779b97f4a7c15ull

/* A flow's two folded words, from which the flow caches and the shared tables
 * index: IPv4 the key's two words, IPv6 the addresses' words xored, then the ports. */
static inline __attribute__((always_inline)) void petrel_fold_flow_v4(const struct petrel_flow_key_v4 *key, __u64 *a, __u64 *b)
{
	const __u64 *w = (const __u64 *)key;

	*a = w[0];
	*b = w[1];
}

static inline __attribute__((always_inline)) void petrel_fold_flow_v6(const struct petrel_flow_key *key, __u64 *a, __u64 *b)
{
	const __u32 *w = (const __u32 *)key;  /* source, destination, ports, protocol */

	*a = (__u64)(w[0] ^ w[2] ^ w[4] ^ w[6]) << 32 | (w[1] ^ w[3] ^ w[5] ^ w[7]);
	*b = w[8];
}

/* The shared-table set of a flow folded into a and b, of `sets`: a
 * multiply-shift hash scaled to the set count (which need not be a power of two). */
static inline __attribute__((always_inline)) __u32 petrel_shared_set(__u64 a, __u64 b, __u32 sets)
{
	__u64 hash = ((a * PETREL_GOLDEN_64 ^ b) * PETREL_GOLDEN_64) >> 32;

	return (hash * sets) >> 32;
}

/* Entries, tails and keys are whole words: the data plane compares and copies them so. */
#define PETREL_SHARED_TAIL_WORDS (sizeof(struct petrel_shared_tail) / 8)
#define PETREL_SHARED_KEY_WORDS_V4 (sizeof(struct petrel_flow_key_v4) / 8)
#define PETREL_SHARED_KEY_WORDS_V6 (sizeof(struct petrel_flow_key) / 8)
_Static_assert(sizeof(struct petrel_shared_tail) % 8 == 0 && sizeof(struct petrel_flow_key_v4) % 8 == 0 &&
	       sizeof(struct petrel_flow_key) % 8 == 0 &&
	       sizeof(struct petrel_shared_entry_v4) == (PETREL_SHARED_KEY_WORDS_V4 + PETREL_SHARED_TAIL_WORDS + 1) * 8 &&
	       sizeof(struct petrel_shared_entry_v6) == (PETREL_SHARED_KEY_WORDS_V6 + PETREL_SHARED_TAIL_WORDS + 1) * 8,
	       "shared-table entries: the key's words, the tail's, the check");

/* The check word of a shared-table entry: a polynomial hash of its key's words
 * and its tail's (an entry torn between two writes changes it), never 0. */
static inline __attribute__((always_inline)) __u64 petrel_shared_check(const __u64 *key, int key_words, const __u64 *tail)
{
	__u64 hash = 0;

#pragma unroll
	for (int i = 0; i < key_words; i++)
		hash = (hash + key[i]) * PETREL_GOLDEN_64;
#pragma unroll
	for (int i = 0; i < (int)PETREL_SHARED_TAIL_WORDS; i++)
		hash = (hash + tail[i]) * PETREL_GOLDEN_64;
	return hash | 1;
}

/* The VIP cache (map vip_cache): per CPU, a direct-mapped array of
 * 1 << vip_cache_shift answers of the VIP lookup (find_vip), indexed by a
 * multiply-shift of the packet's VIP key. A new flow's packet (a SYN, a ring
 * lookup) then finds its VIP with an inlined array read and a key compare, where
 * the VIP maps cost the kernel's hash, bucket walk and calls. A slot is good only
 * while vip_epoch (a global the control plane bumps after writing VIP entries)
 * is the one it was filled under; the data plane reads the epoch before its
 * lookup, so a slot is never older than its epoch says. */
struct petrel_vip_cache_slot {
	__u64 key[3];    /* address words (IPv4: the address, then zeros), then port | protocol << 16 | family << 24 */
	__u64 epoch;     /* vip_epoch when filled */
	struct petrel_vip_meta meta;  /* vip_index PETREL_NO_VIP_INDEX: no VIP has this key */
};

/* A vip_index no VIP has: a VIP cache slot's answer "no VIP". */
#define PETREL_NO_VIP_INDEX 0xffffffffu

/* The ring map: key = a row index (petrel_vip_meta.ring_row), value = a whole
 * row of petrel_load_settings.ring_size __u32 real ids (0: no real). There are
 * two rows per VIP: the control plane writes a changed ring into a free row,
 * then points the VIP at it, so every VIP switches rings in one step. */

/* Fixed when the program is loaded (the balancer's .rodata): the verifier then
 * knows the ring size and proves every ring access in bounds. */
struct petrel_load_settings {
	__u32 ring_size;            /* slots per VIP row (a prime) */
	__u32 flow_cache_shift;     /* flow_cache_v4 and _v6 have 1 << flow_cache_shift slots */
	__u32 vip_cache_shift;      /* vip_cache has 1 << vip_cache_shift slots */
	__u32 ticks_per_second;     /* the kernel's HZ: jiffies in a second (the per-second limits' clock) */
	__u32 shared_sets;          /* sets in conn_shared_v4 and _v6 (PETREL_SHARED_TABLE_WAYS entries each) */
};

/* Global settings, one entry in the config map. */
struct petrel_config {
	__u8   interface_mac[6];    /* source MAC of every forwarded frame */
	__u8   next_hop_mac[6];     /* destination MAC: the router towards the reals */
	__u32  mtu;                 /* largest L3 packet the egress link carries */
	__be32 encap_src_v4_be;     /* outer IPv4 source: high 16 bits kept, low 16 from the flow */
	__be32 encap_src_v6_be[4];  /* outer IPv6 source: high 64 bits kept, low 64 from the flow */
	__u32  syn_flood_threshold; /* new decisions per CPU per second written to the tables; 0: no limit */
	__be16 gue_port_be;         /* UDP destination port of GUE packets to the reals */
	__u8   icmp_answers;        /* PETREL_ICMP_*: which ICMP messages the balancer answers itself */
	__u8   pad;
	__u32  icmp_rate_limit;     /* ICMP answers per CPU per second; 0: no limit */
};

/* petrel_config.icmp_answers (bpf/lib/icmp.h, docs/icmp.md). */
/* Echo requests to an address that has a VIP get an echo reply from the balancer. */
#define PETREL_ICMP_ECHO_REPLY  (1u << 0)
/* A packet too big once encapsulated gets "fragmentation needed" / "packet too big". */
#define PETREL_ICMP_TOO_BIG     (1u << 1)

/* Map vip_address_set: key = an address that has at least one VIP (exactly, unlike
 * the filter), value = 1. Echo requests are answered only for these. */
struct petrel_vip_address {
	__be32 addr_be[4];   /* IPv4: the first word, the others zero */
	__u8   family;
	__u8   pad[3];
};

/* The ICMP answers' rate limit on one CPU (map icmp_rate, per CPU, one entry). */
struct petrel_icmp_rate_state {
	__u64 window_start;  /* in ticks (jiffies): see bpf/lib/clock.h */
	__u64 sent;
};

/* ---- QUIC connection-ID routing ------------------------------------------- */

/* Petrel CID format v1 (the QUIC-LB draft's plaintext layout, fixed config):
 * byte 0 bits 7-5 = PETREL_QUIC_CID_V1 (config rotation), bits 4-0 = length - 1;
 * bytes 1-2 = the server id, big-endian (0: none); then a nonce of 4+ bytes. */
#define PETREL_QUIC_CID_V1          1
#define PETREL_QUIC_CID_MIN_LEN     7
#define PETREL_MAX_QUIC_SERVERS     65536

/* Map quic_servers: which real a server id names, per VIP (ids are unique per VIP). */
struct petrel_quic_server_key {
	__u32 vip_index;     /* petrel_vip_meta.vip_index */
	__u32 server_id;     /* 1..65535 */
};

struct petrel_quic_server {
	__u32 real_id;
	__u32 real_generation; /* a reused real id does not inherit the route */
};

/* ---- Source-prefix routing ------------------------------------------------ */

/* Map source_routes (an LPM trie shared by every VIP): a client whose source
 * address falls in a VIP's prefix goes to the real pinned to it, the longest
 * prefix winning. The key's prefix covers vip_index whole, then the source
 * prefix: prefixlen = 32 + the source prefix's length (IPv4: at most 32 + 32,
 * the address in src_be[0]; IPv6: at most 32 + 128). Every prefix includes all
 * 32 bits of vip_index, so its byte order does not matter; both sides write it
 * in host order. A lookup uses PETREL_SOURCE_ROUTE_LOOKUP_LEN. */
#define PETREL_MAX_SOURCE_ROUTES        16384  /* entries, all VIPs together */
#define PETREL_SOURCE_ROUTE_VIP_BITS    32
#define PETREL_SOURCE_ROUTE_LOOKUP_LEN  (PETREL_SOURCE_ROUTE_VIP_BITS + 128)

struct petrel_source_route_key {
	__u32  prefixlen;
	__u32  vip_index;    /* petrel_vip_meta.vip_index */
	__be32 src_be[4];    /* the prefix's address, host bits zero (IPv4: word 0, the rest zero) */
};

struct petrel_source_route {
	__u32 real_id;         /* PETREL_NO_REAL: the pinned real is out of service (drained or
	                          failing its health check); the ring decides */
	__u32 real_generation; /* a reused real id does not inherit the route */
};

/* The SYN-flood guard's state on one CPU (map flood_state, per CPU, one entry):
 * new decisions counted in the current one-second window. Above the threshold a
 * decision still forwards but is not written to the connection tables. */
struct petrel_flood_state {
	__u64 window_start;  /* in ticks (jiffies): see bpf/lib/clock.h */
	__u64 decisions;
};

struct petrel_traffic {
	__u64 packets;
	__u64 bytes;
};

/* ---- The flow log (bpf/lib/flowlog.h) ------------------------------------- */

/* While someone follows the log (petrel flows --follow), the data plane writes one
 * petrel_flow_record per sampled decision into the ring buffer flow_log. A
 * decision is a real chosen for a flow afresh (not a connection-table hit); the
 * reason says how. Nobody following costs one array read, on decisions only. */
#define PETREL_FLOW_LOG_RING_BYTES (256 * 1024)  /* a power of two, a multiple of the page */
/* A record wakes the reader only once this much is waiting; the reader also drains
 * every PETREL_FLOW_LOG_DRAIN_MS. A wakeup per record would cost more than the record. */
#define PETREL_FLOW_LOG_WAKEUP_BYTES (32 * 1024)
#define PETREL_FLOW_LOG_DRAIN_MS 50

enum petrel_flow_reason {
	PETREL_FLOW_REASON_RING = 1,        /* a new flow placed by the VIP's Maglev ring */
	PETREL_FLOW_REASON_RING_AFTER_MISS, /* a mid-connection TCP packet no table knew (evicted, restart): placed again by the ring */
	PETREL_FLOW_REASON_QUIC_CID,        /* a QUIC short header sent to the real its connection ID names (each such packet) */
	PETREL_FLOW_REASON_SOURCE_PREFIX,   /* the VIP's source-prefix routes chose the real (source-prefix routing) */
};

/* petrel_flow_record.flags */
#define PETREL_FLOW_NOT_REMEMBERED (1u << 0) /* the SYN-flood guard kept the decision out of the tables */
#define PETREL_FLOW_NO_TABLES      (1u << 1) /* the VIP bypasses the tables (lru_bypass): every packet is decided */

/* One entry in flow_log_settings, written by the control plane. */
struct petrel_flow_log_settings {
	__u32 sample_every;  /* 0: the log is off; N: one decision in N per CPU is logged */
};

struct petrel_flow_record {
	__u64 time_ns;                  /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	struct petrel_flow_key flow;    /* the client's 5-tuple as on the wire */
	__be32 real_be[4];
	__u32  vip_index;               /* petrel_vip_meta.vip_index */
	__u32  real_id;
	__u32  cpu;
	__u8   real_family;
	__u8   reason;                  /* enum petrel_flow_reason */
	__u8   flags;                   /* PETREL_FLOW_* */
	__u8   pad;
};

/* ---- Counters -------------------------------------------------------------- */

/* Swift's StatReason and Decapsulator.Outcome are pinned to these enums by
 * PetrelTests/CounterABITests: same order, same count, and each metric name is
 * the constant's name after the prefix, in lower case (PETREL_STAT_DROP_NO_REAL
 * is drop_no_real). Outcomes are FORWARD, PASS_* and DROP_*; the rest are not.
 *
 * Every packet is counted once under RX and once under exactly one outcome
 * (a FORWARD, PASS_* or DROP_* reason), so RX equals the sum of the outcomes.
 * The EVENT_* counters are extra facts about how the real was chosen; they are
 * counted as the choice is made, before the packet's outcome is known. */
enum petrel_stat {
	PETREL_STAT_RX = 0,
	PETREL_STAT_FORWARD,              /* encapsulated and sent with XDP_TX */
	PETREL_STAT_PASS_NOT_IP,          /* not IPv4/IPv6: the kernel's business */
	PETREL_STAT_PASS_NOT_VIP,         /* IP but no VIP matches */
	PETREL_STAT_PASS_FRAGMENT,        /* IPv4 fragment or IPv6 fragment header */
	PETREL_STAT_PASS_UNSUPPORTED,     /* other L4 protocol or IPv6 extension header */
	PETREL_STAT_PASS_ICMP,            /* ICMP not about a VIP flow (echo, ...) */
	PETREL_STAT_DROP_MALFORMED,       /* a header is cut short or lies about its length */
	PETREL_STAT_DROP_NO_REAL,         /* the VIP has no real (empty ring) */
	PETREL_STAT_DROP_TOO_BIG,         /* encapsulated packet would exceed the MTU */
	PETREL_STAT_DROP_ENCAP_FAILED,    /* the kernel refused to grow the packet */
	PETREL_STAT_DROP_NO_CONFIG,       /* the control plane has not configured the program */
	PETREL_STAT_EVENT_NEW_CONNECTION, /* a new decision (the ring's, or a source route's) */
	PETREL_STAT_EVENT_CONNECTION_HIT, /* the per-CPU connection table knew the flow */
	PETREL_STAT_EVENT_SHARED_TABLE_HIT, /* the shared connection table knew the flow */
	PETREL_STAT_EVENT_LRU_MISS,       /* a non-SYN TCP packet of a flow nobody knew */
	PETREL_STAT_EVENT_ICMP_FORWARD,   /* an ICMP error sent to the real of its flow */
	PETREL_STAT_EVENT_NO_CPU_TABLE,   /* no per-CPU table on this CPU: the shared one alone was used */
	PETREL_STAT_EVENT_SYN_FLOOD,      /* a new decision not written to the tables: this CPU is over syn_flood_threshold */
	PETREL_STAT_EVENT_GUE_FORWARD,    /* encapsulated in GUE (UDP) rather than IP-in-IP */
	PETREL_STAT_EVENT_QUIC_LONG_HEADER,  /* QUIC VIP, long header: placed as any new flow */
	PETREL_STAT_EVENT_QUIC_CID_ROUTED,   /* short header sent to the real its server id names */
	PETREL_STAT_EVENT_QUIC_CID_UNKNOWN,  /* format v1 but no real has that id: normal path */
	PETREL_STAT_EVENT_QUIC_CID_ZERO,     /* format v1 with server id 0: normal path */
	PETREL_STAT_EVENT_QUIC_CID_MALFORMED,/* too short or another CID format: normal path */
	PETREL_STAT_EVENT_SOURCE_ROUTED,  /* a new decision made by a source route (client prefix), not the ring */
	PETREL_STAT_EVENT_FLOW_LOG_CANDIDATE, /* a decision made while the flow log was on, before 1-in-N sampling */
	PETREL_STAT_EVENT_FLOW_LOG_EMITTED,   /* a decision written to the flow log */
	PETREL_STAT_EVENT_FLOW_LOG_LOST,      /* a sampled decision not logged: the flow-log ring was full */
	PETREL_STAT_REPLY_ECHO,           /* an echo request to a VIP address, answered with XDP_TX */
	PETREL_STAT_REPLY_TOO_BIG,        /* too big once encapsulated: answered with ICMP "too big" (XDP_TX) */
	PETREL_STAT_EVENT_ICMP_RATE_LIMITED, /* an ICMP answer not sent: this CPU is over icmp_rate_limit */
	PETREL_STAT_EVENT_FLOW_CACHE_HIT, /* of the connection hits, those this CPU's flow cache answered */
	PETREL_STAT_EVENT_VIP_CACHE_MISS, /* a VIP lookup this CPU's VIP cache could not answer: the VIP maps were read */
	PETREL_STAT_COUNT
};

/* Every global counter of one CPU, in one per-CPU record (map stats, one
 * entry): a packet's counters cost one lookup. Indexed by enum petrel_stat. */
struct petrel_counters {
	__u64 count[PETREL_STAT_COUNT];
};

/* Outcomes of the decapsulation program on the reals. */
enum petrel_decap_stat {
	PETREL_DECAP_RX = 0,
	PETREL_DECAP_DECAPSULATED,        /* outer header stripped, inner packet passed */
	PETREL_DECAP_PASS_NOT_TUNNEL,     /* not IP-in-IP: passed untouched */
	PETREL_DECAP_PASS_NOT_LOCAL,      /* tunnel packet for another host: passed untouched */
	PETREL_DECAP_PASS_FRAGMENT,       /* fragmented tunnel packet: left to the kernel, which reassembles */
	PETREL_DECAP_DROP_MALFORMED,      /* tunnel packet cut short or lying about its length */
	PETREL_DECAP_DROP_ADJUST_FAILED,  /* the kernel refused to strip the outer header */
	PETREL_DECAP_DECAPSULATED_GUE,    /* GUE (UDP) outer headers stripped, inner packet passed */
	PETREL_DECAP_DROP_GUE_MALFORMED,  /* to our GUE port but not a whole GUE variant 1 packet */
	PETREL_DECAP_STAT_COUNT
};

/* GUE (Generic UDP Encapsulation, variant 1): the inner IP packet follows the
 * outer UDP header directly; its first nibble (4 or 6) says the inner family.
 * The default destination port; operators may choose another. */
#define PETREL_GUE_DEFAULT_PORT 6080

/* The decap program's settings, one entry in decap_settings. */
struct petrel_decap_settings {
	__be16 gue_port_be;  /* UDP port of GUE packets to strip; 0: GUE off */
	__u8   pad[2];
};

/* The decap program strips tunnels whose outer destination is in this map. */
struct petrel_decap_addr {
	__be32 addr_be[4];
	__u8   family;
	__u8   pad[3];
};

/* ---- Health-check forwarding (bpf/healthcheck.bpf.c) --------------------- */

/* A probe socket carries SO_MARK = PETREL_HEALTH_MARK_TAG | target id (1..0xffff).
 * The tc egress program encapsulates such packets to the real stored under the
 * mark in its health_targets map (value: struct petrel_real; generation unused)
 * and leaves every other packet alone. Its health_config map holds one struct
 * petrel_config: the same MACs, MTU and outer source prefixes as the balancer's. */
#define PETREL_HEALTH_MARK_TAG  0x50e70000u
#define PETREL_HEALTH_MARK_MASK 0xffff0000u

enum petrel_health_stat {
	PETREL_HEALTH_RX = 0,              /* marked packets seen (unmarked ones are not counted) */
	PETREL_HEALTH_ENCAPSULATED,        /* sent on, encapsulated to the mark's real */
	PETREL_HEALTH_DROP_NO_TARGET,      /* the mark names no real */
	PETREL_HEALTH_DROP_NO_CONFIG,      /* the control plane has not configured the program */
	PETREL_HEALTH_DROP_NOT_IP,         /* neither IPv4 nor IPv6 */
	PETREL_HEALTH_DROP_FAMILY,         /* an IPv6 probe towards an IPv4 real */
	PETREL_HEALTH_DROP_TOO_BIG,        /* encapsulated packet would exceed the MTU */
	PETREL_HEALTH_DROP_ENCAP_FAILED,   /* the kernel refused to grow the packet */
	PETREL_HEALTH_STAT_COUNT
};

/* ---- Packet capture (bpf/lib/capture.h, `petrel capture`) ---------------- */

/* Captures run at once, each in a slot with its own filter. The balancer's
 * global capture_slots_active (section .data.capture) has bit N set while slot
 * N runs: with it zero, a packet pays one read and one branch. */
#define PETREL_CAPTURE_SLOTS       4
/* Bytes of a packet recorded at most (headers and the first bytes). */
#define PETREL_CAPTURE_SNAP_LEN    256

/* Waking the reader costs an interrupt per record (about 1 us in a VM): the data
 * plane wakes it only once this many bytes wait, and the reader also reads the
 * ring every PETREL_CAPTURE_POLL_MS. */
#define PETREL_CAPTURE_WAKEUP_BYTES (64 * 1024)
#define PETREL_CAPTURE_POLL_MS      50

/* Which copy of the packet a slot records (petrel_capture_filter.directions). */
#define PETREL_CAPTURE_RECEIVED    (1u << 0)  /* as it arrived */
#define PETREL_CAPTURE_SENT        (1u << 1)  /* as it left: encapsulated (only packets forwarded) */

/* What a slot selects (map capture_filters, one entry per slot). A packet is
 * taken when every field matches; the data plane does this selection so a
 * flood of other traffic never reaches user space. */
struct petrel_capture_filter {
	__u64 outcomes;      /* bit (1 << reason) per petrel_stat outcome wanted */
	__u32 vip;           /* petrel_vip_meta.vip_index + 1; 0: any packet, also not for a VIP */
	__u32 real_id;       /* the real chosen; 0: any */
	__u32 sample_every;  /* take 1 of every N matching packets (per CPU); 0 or 1: all */
	__u8  family;        /* PETREL_FAMILY_IPV4/IPV6; 0: any */
	__u8  protocol;      /* IP protocol of the packet (IPPROTO_TCP, _UDP; IPPROTO_ICMP also for ICMPv6); 0: any */
	__u8  directions;    /* PETREL_CAPTURE_RECEIVED | PETREL_CAPTURE_SENT */
	__u8  pad;
};

/* Per slot and CPU (map capture_counts): packets that matched the filter,
 * records written, and records lost because the ring was full. */
struct petrel_capture_counts {
	__u64 matched;
	__u64 recorded;
	__u64 lost;
};

/* One record in the capture_ring ring buffer: one copy of one packet. */
struct petrel_capture_record {
	__u64 time_ns;       /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 slots;         /* bit N: slot N selected this copy */
	__u32 vip;           /* vip_index + 1; 0: no VIP */
	__u32 real_id;       /* 0: no real */
	__u32 length;        /* the packet's length on the wire */
	__u16 captured;      /* bytes in data (<= PETREL_CAPTURE_SNAP_LEN) */
	__u8  reason;        /* the packet's petrel_stat outcome */
	__u8  direction;     /* PETREL_CAPTURE_RECEIVED or PETREL_CAPTURE_SENT */
	__u32 pad;
	__u8  data[PETREL_CAPTURE_SNAP_LEN];
};

#endif /* PETREL_ABI_H */
