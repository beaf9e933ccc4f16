/* Choosing the real: the VIP match, the flow hash, the connection tables and the
 * Maglev ring. Swift's explain(flow:) mirrors this file step by step. */
#ifndef PETREL_SELECT_H
#define PETREL_SELECT_H

#include <bpf/bpf_endian.h>
#include "maps.h"
#include "jhash.h"
#include "parse.h"
#include "stats.h"

/* Exact (address, port, protocol) first, then the address's port-wildcard VIP. */
static __always_inline struct petrel_vip_meta *find_vip(const struct petrel_flow_key *flow)
{
	struct petrel_vip_key key = {};
	struct petrel_vip_meta *meta;

	__builtin_memcpy(key.addr_be, flow->dst_be, sizeof(key.addr_be));
	key.port_be = flow->dst_port_be;
	key.protocol = flow->protocol;
	key.family = flow->family;
	meta = bpf_map_lookup_elem(&vips, &key);
	if (meta)
		return meta;
	key.port_be = 0;
	return bpf_map_lookup_elem(&vips, &key);
}

/* The flow hash places a flow on the ring and spreads outer source addresses. */
static __always_inline __u32 flow_hash(const struct petrel_flow_key *flow, __u32 vip_flags)
{
	__u32 src_word, ports;

	if (flow->family == PETREL_FAMILY_IPV6)
		src_word = jhash_4words(bpf_ntohl(flow->src_be[0]), bpf_ntohl(flow->src_be[1]),
					bpf_ntohl(flow->src_be[2]), bpf_ntohl(flow->src_be[3]),
					PETREL_FLOW_HASH_SEED);
	else
		src_word = bpf_ntohl(flow->src_be[0]);
	ports = ((__u32)bpf_ntohs(flow->src_port_be) << 16) | bpf_ntohs(flow->dst_port_be);

	if (vip_flags & PETREL_VIP_HASH_DST_PORT_ONLY) {
		src_word = 0;
		ports = bpf_ntohs(flow->dst_port_be);
	} else if (vip_flags & PETREL_VIP_HASH_NO_SRC_PORT) {
		ports = bpf_ntohs(flow->dst_port_be);
	}
	return jhash_3words(src_word, ports, flow->protocol, PETREL_FLOW_HASH_SEED);
}

/* A remembered real is still good if its id has not been freed or reused since. */
static __always_inline struct petrel_real *remembered_real(struct petrel_conn *conn)
{
	struct petrel_real *real;
	__u32 id;

	if (!conn)
		return 0;
	id = conn->real_id;
	real = bpf_map_lookup_elem(&reals, &id);
	if (!real || !real->family || real->generation != conn->real_generation)
		return 0;
	return real;
}

static __always_inline void *cpu_conn_table(void)
{
	__u32 cpu = bpf_get_smp_processor_id();

	return bpf_map_lookup_elem(&conn_tables, &cpu);
}

struct choice {
	struct petrel_real *real;
	__u32 real_id;
	__u32 hash;
};

/* The real a table entry names, if it is still good; fills out when it is. */
static __always_inline int take_remembered(struct petrel_conn *conn, struct choice *out)
{
	struct petrel_real *real = remembered_real(conn);

	if (!real)
		return 0;
	out->real = real;
	out->real_id = conn->real_id;
	out->hash = conn->flow_hash;
	return 1;
}

/* Looks the flow up in this CPU's table, then in the shared one. */
static __always_inline int choice_from_tables(const struct packet *pkt, void *cpu_table, struct choice *out)
{
	struct petrel_conn *conn;

	if (cpu_table && take_remembered(bpf_map_lookup_elem(cpu_table, &pkt->flow), out)) {
		count_stat(PETREL_STAT_EVENT_CONNECTION_HIT);
		return 1;
	}
	conn = bpf_map_lookup_elem(&conn_shared, &pkt->flow);
	if (!take_remembered(conn, out))
		return 0;
	count_stat(PETREL_STAT_EVENT_SHARED_TABLE_HIT);
	/* Teach this CPU's table, so the next packet stays on the fast path. */
	if (cpu_table && !pkt->icmp_error)
		bpf_map_update_elem(cpu_table, &pkt->flow, conn, BPF_ANY);
	return 1;
}

/* A new decision goes to the shared table only; this CPU's table learns the flow
 * from its second packet (choice_from_tables). So a SYN costs one LRU insert, and
 * SYNs that never complete (a flood) cannot push established flows out of the
 * per-CPU tables. An entry this CPU already holds (a flow decided afresh) is
 * overwritten, or it would win over the new decision. */
static __always_inline void remember_choice(const struct packet *pkt, void *cpu_table, const struct choice *choice)
{
	struct petrel_conn conn = {
		.real_id = choice->real_id,
		.real_generation = choice->real->generation,
		.flow_hash = choice->hash,
	};

	if (cpu_table && bpf_map_lookup_elem(cpu_table, &pkt->flow))
		bpf_map_update_elem(cpu_table, &pkt->flow, &conn, BPF_ANY);
	bpf_map_update_elem(&conn_shared, &pkt->flow, &conn, BPF_ANY);
}

/* Returns PARSE_OK with out filled, or the reason no real can take the packet.
 * A flow the tables know brings its hash along; only a new decision hashes. */
static __always_inline int choose_real(const struct packet *pkt, const struct petrel_vip_meta *vip,
				       struct choice *out)
{
	int use_tables = !(vip->flags & PETREL_VIP_LRU_BYPASS);
	void *cpu_table = 0;
	__u64 slot, ring_size = load_settings.ring_size;
	__u32 *row;

	if (use_tables) {
		cpu_table = cpu_conn_table();
		if (!cpu_table)
			count_stat(PETREL_STAT_EVENT_NO_CPU_TABLE);
		/* A SYN opens a new connection: it always takes a fresh decision. */
		if (!pkt->tcp_syn && choice_from_tables(pkt, cpu_table, out))
			return PARSE_OK;
		if (pkt->flow.protocol == IPPROTO_TCP && !pkt->tcp_syn && !pkt->icmp_error)
			count_stat(PETREL_STAT_EVENT_LRU_MISS);
	}

	out->hash = flow_hash(&pkt->flow, vip->flags);
	row = bpf_map_lookup_elem(&ring, &vip->ring_row);
	slot = (__u64)out->hash % ring_size;
	/* The compiler knows slot < ring_size and would drop the check below; the
	 * verifier does not know it and needs the check to prove the access safe. */
	asm volatile("" : "+r"(slot));
	if (!row || slot >= ring_size)
		return PETREL_STAT_DROP_NO_REAL;
	out->real_id = row[slot];
	if (out->real_id == PETREL_NO_REAL)
		return PETREL_STAT_DROP_NO_REAL;
	out->real = bpf_map_lookup_elem(&reals, &out->real_id);
	if (!out->real || !out->real->family)
		return PETREL_STAT_DROP_NO_REAL;

	if (!pkt->icmp_error) {
		count_stat(PETREL_STAT_EVENT_NEW_CONNECTION);
		if (use_tables)
			remember_choice(pkt, cpu_table, out);
	}
	return PARSE_OK;
}

#endif
