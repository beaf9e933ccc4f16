/* Choosing the real: the VIP match, the flow hash, the connection tables and the
 * Maglev ring. Swift's explain(flow:) mirrors this file step by step. */
#ifndef PETREL_SELECT_H
#define PETREL_SELECT_H

#include <bpf/bpf_endian.h>
#include "maps.h"
#include "jhash.h"
#include "parse.h"
#include "stats.h"
#include "source_route.h"
#include "flowlog.h"
#include "clock.h"

/* The VIP address filter's bits for the packet's destination: 0 proves that no
 * VIP has this address (see PETREL_ADDR_FILTER_SLOTS). */
static __always_inline __u32 vip_address_bits(const struct petrel_flow_key *flow)
{
	__u32 slot = petrel_addr_filter_slot(flow->dst_be[0], flow->dst_be[1], flow->dst_be[2], flow->dst_be[3]);
	__u32 *bits = bpf_map_lookup_elem(&vip_addresses, &slot);

	return bits ? *bits : 0;
}

static __always_inline __u32 wildcard_bit(__u8 protocol)
{
	return protocol == IPPROTO_TCP ? PETREL_ADDR_TCP_WILDCARD : PETREL_ADDR_UDP_WILDCARD;
}

/* Exact (address, port, protocol) first, then the address's port-wildcard VIP,
 * looked up only where the filter's bits say one may exist. */
static __always_inline struct petrel_vip_meta *lookup_vip(const struct petrel_flow_key *flow, __u32 bits)
{
	struct petrel_vip_meta *meta;

	/* Keys are written in whole words (see set_flow_ports). */
	if (flow->family == PETREL_FAMILY_IPV4) {
		union {
			struct petrel_vip_key_v4 key;
			__u64 word;
		} v4;
		__u64 address = flow->dst_be[0], protocol = (__u64)flow->protocol << 48;

		v4.word = address | (__u64)flow->dst_port_be << 32 | protocol;
		meta = bpf_map_lookup_elem(&vips_v4, &v4.key);
		if (meta || !(bits & wildcard_bit(flow->protocol)))
			return meta;
		v4.word = address | protocol;
		return bpf_map_lookup_elem(&vips_v4, &v4.key);
	} else {
		union {
			struct petrel_vip_key key;
			__u32 words[5];
		} v6;
		__u32 protocol = (__u32)flow->protocol << 16 | (__u32)PETREL_FAMILY_IPV6 << 24;

		v6.words[0] = flow->dst_be[0];
		v6.words[1] = flow->dst_be[1];
		v6.words[2] = flow->dst_be[2];
		v6.words[3] = flow->dst_be[3];
		v6.words[4] = (__u32)flow->dst_port_be | protocol;
		meta = bpf_map_lookup_elem(&vips_v6, &v6.key);
		if (meta || !(bits & wildcard_bit(flow->protocol)))
			return meta;
		v6.words[4] = protocol;
		return bpf_map_lookup_elem(&vips_v6, &v6.key);
	}
}

/* A cache slot's index for a key folded into two words: a multiply-shift hash,
 * its top `shift` bits (the caches have 1 << shift slots). */
static __always_inline __u32 cache_index(__u64 a, __u64 b, __u32 shift)
{
	return ((a * PETREL_GOLDEN_64 ^ b) * PETREL_GOLDEN_64) >> (64 - shift);
}

/* The packet's VIP: from this CPU's VIP cache (petrel_vip_cache_slot) if a slot
 * filled under the current epoch holds its key, else from the VIP maps, whose
 * answer (a VIP or none) the slot then keeps. */
static __always_inline struct petrel_vip_meta *find_vip(const struct petrel_flow_key *flow, __u32 bits,
						      struct petrel_counters *counters)
{
	struct petrel_vip_cache_slot *slot;
	struct petrel_vip_meta *meta;
	__u64 address_high, address_low, tail, epoch;
	__u32 index;

	/* Read before the VIP maps: a slot is then never older than the epoch it carries. */
	epoch = vip_epoch;
	/* IPv4: dst_be[1..3] are zero. Built from 32-bit loads, as the words were stored. */
	address_high = (__u64)flow->dst_be[0] | (__u64)flow->dst_be[1] << 32;
	address_low = (__u64)flow->dst_be[2] | (__u64)flow->dst_be[3] << 32;
	tail = (__u64)flow->dst_port_be | (__u64)flow->protocol << 16 | (__u64)flow->family << 24;
	index = cache_index(address_high, address_low ^ tail, load_settings.vip_cache_shift);
	slot = bpf_map_lookup_elem(&vip_cache, &index);
	if (!slot)  /* never: the index is in range */
		return 0;
	if (slot->key[0] != address_high || slot->key[1] != address_low || slot->key[2] != tail || slot->epoch != epoch) {
		count_stat(counters, PETREL_STAT_EVENT_VIP_CACHE_MISS);
		meta = lookup_vip(flow, bits);
		slot->key[0] = address_high;
		slot->key[1] = address_low;
		slot->key[2] = tail;
		slot->epoch = epoch;
		if (meta)
			slot->meta = *meta;
		else
			slot->meta.vip_index = PETREL_NO_VIP_INDEX;
	}
	/* One way out for a hit and a fill: the verifier walks what follows once. */
	return slot->meta.vip_index == PETREL_NO_VIP_INDEX ? 0 : &slot->meta;
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

/* Clang would merge the IPv4 and IPv6 copies of a map call into one call on a
 * map chosen at run time; the verifier then cannot inline it and a lookup
 * becomes a slow generic helper call. An empty asm statement that differs per
 * family keeps the two calls apart. */
#define KEEP_APART(value, family) asm volatile("" : "+r"(value) : "i"(family))

/* The flow as a connection-table key: IPv4 flows have compact keys and tables
 * of their own. */
struct flow_tables {
	__u64 v4;   /* 0 or 1; 64 bits, so the verifier tracks it exactly through the stack */
	union {
		struct petrel_flow_key_v4 key4;
		__u64 key4_words[2];  /* written whole (see set_flow_ports) */
	};
	const struct petrel_flow_key *key6;
	void *cpu;   /* this CPU's table, if it has one */
	__u64 fold[2];  /* the flow folded into two words (petrel_fold_flow_v4 / _v6): the caches' and shared table's index */
};

static __always_inline void open_tables(const struct packet *pkt, struct flow_tables *t)
{
	__u32 cpu = bpf_get_smp_processor_id();
	__u64 v4 = pkt->flow.family == PETREL_FAMILY_IPV4;

	/* Every later test is on this 0 or 1, which the verifier knows exactly; a
	 * second "family == 4" test would let it explore an IPv6 path holding an
	 * IPv4 table (it cannot represent "not 4"), and un-inline the lookups. */
	asm volatile("" : "+r"(v4));
	t->v4 = v4;
	t->key6 = &pkt->flow;
	if (v4) {
		t->key4_words[0] = (__u64)pkt->flow.src_be[0] | (__u64)pkt->flow.dst_be[0] << 32;
		t->key4_words[1] = (__u64)*(__u32 *)&pkt->flow.src_port_be | (__u64)pkt->flow.protocol << 32;
		t->cpu = bpf_map_lookup_elem(&conn_tables_v4, &cpu);
		KEEP_APART(t->cpu, 4);
		petrel_fold_flow_v4(&t->key4, &t->fold[0], &t->fold[1]);
	} else {
		t->cpu = bpf_map_lookup_elem(&conn_tables_v6, &cpu);
		KEEP_APART(t->cpu, 6);
		petrel_fold_flow_v6(t->key6, &t->fold[0], &t->fold[1]);
	}
}

static __always_inline struct petrel_conn *lookup_cpu(const struct flow_tables *t)
{
	struct petrel_conn *conn;

	if (t->v4) {
		conn = bpf_map_lookup_elem(t->cpu, &t->key4);
		KEEP_APART(conn, 4);
	} else {
		conn = bpf_map_lookup_elem(t->cpu, t->key6);
		KEEP_APART(conn, 6);
	}
	return conn;
}

/* This CPU's flow-cache slot for the flow (petrel_flow_cache_v4 or _v6). */
static __always_inline void *cache_slot(const struct flow_tables *t)
{
	__u32 index = cache_index(t->fold[0], t->fold[1], load_settings.flow_cache_shift);
	void *slot;

	if (t->v4) {
		slot = bpf_map_lookup_elem(&flow_cache_v4, &index);
		KEEP_APART(slot, 4);
	} else {
		slot = bpf_map_lookup_elem(&flow_cache_v6, &index);
		KEEP_APART(slot, 6);
	}
	return slot;
}

/* The entry a cache slot holds for this flow, or NULL if it holds another flow's. */
static __always_inline struct petrel_conn *cached_conn(const struct flow_tables *t, void *slot)
{
	if (t->v4) {
		struct petrel_flow_cache_v4 *cached = slot;
		const __u64 *key = (const __u64 *)&cached->key;

		return key[0] == t->key4_words[0] && key[1] == t->key4_words[1] ? &cached->conn : 0;
	} else {
		struct petrel_flow_cache_v6 *cached = slot;
		const __u64 *key = (const __u64 *)&cached->key, *flow = (const __u64 *)t->key6;
		__u64 difference = 0;

#pragma unroll
		for (int i = 0; i < sizeof(struct petrel_flow_key) / 8; i++)
			difference |= key[i] ^ flow[i];
		return difference ? 0 : &cached->conn;
	}
}

static __always_inline void cache_conn(const struct flow_tables *t, void *slot, const struct petrel_conn *conn)
{
	if (t->v4) {
		struct petrel_flow_cache_v4 *cached = slot;
		__u64 *key = (__u64 *)&cached->key;

		key[0] = t->key4_words[0];
		key[1] = t->key4_words[1];
		cached->conn = *conn;
	} else {
		struct petrel_flow_cache_v6 *cached = slot;
		const __u64 *flow = (const __u64 *)t->key6;
		__u64 *key = (__u64 *)&cached->key;

#pragma unroll
		for (int i = 0; i < sizeof(struct petrel_flow_key) / 8; i++)
			key[i] = flow[i];
		cached->conn = *conn;
	}
}

/* Writes this CPU's table, and its flow cache with it. */
static __always_inline void update_cpu(const struct flow_tables *t, const struct petrel_conn *conn)
{
	void *slot;
	long err;

	if (t->v4) {
		err = bpf_map_update_elem(t->cpu, &t->key4, conn, BPF_ANY);
		KEEP_APART(err, 4);
	} else {
		err = bpf_map_update_elem(t->cpu, t->key6, conn, BPF_ANY);
		KEEP_APART(err, 6);
	}
	if (err)  /* the table kept its entry: so does the cache */
		return;
	slot = cache_slot(t);
	if (slot)
		cache_conn(t, slot, conn);
}

/* The shared table's set for the flow (petrel_shared_set_v4 or _v6), as words. */
static __always_inline __u64 *shared_set(const struct flow_tables *t)
{
	__u32 index = petrel_shared_set(t->fold[0], t->fold[1], load_settings.shared_sets);
	__u64 *set;

	if (t->v4) {
		set = bpf_map_lookup_elem(&conn_shared_v4, &index);
		KEEP_APART(set, 4);
	} else {
		set = bpf_map_lookup_elem(&conn_shared_v6, &index);
		KEEP_APART(set, 6);
	}
	return set;
}

/* All ones if x is 0, else 0, without a branch: the verifier then walks what
 * follows once, not once per outcome. */
static __always_inline __u64 all_ones_if_zero(__u64 x)
{
	__u64 nonzero = x | -x;  /* top bit set unless x is 0 */

	asm volatile("" : "+r"(nonzero));  /* or clang turns it back into a compare and branch */
	return (nonzero >> 63) - 1;
}

/* All ones if a > b, else 0 (both below 2^32), without a branch. */
static __always_inline __u64 all_ones_if_greater(__u64 a, __u64 b)
{
	__u64 difference = b - a;  /* top bit set if a > b */

	asm volatile("" : "+r"(difference));
	return -(difference >> 63);
}

/* A shared-table entry's tail as words (petrel_shared_tail). */
union shared_tail {
	struct petrel_shared_tail tail;
	__u64 words[PETREL_SHARED_TAIL_WORDS];
};

/* Words in a shared-table entry with a key of key_words words: key, tail, check. */
#define SHARED_ENTRY_WORDS(key_words) ((key_words) + PETREL_SHARED_TAIL_WORDS + 1)

/* The way of the first entry of `set` with this key, or an empty mask in
 * *matched if no entry has it. Every way is read and the match kept by masks,
 * not branches: one path for the verifier to walk. */
static __always_inline __u64 shared_way(const __u64 *set, const __u64 *key, int key_words, __u64 *matched)
{
	const int entry_words = SHARED_ENTRY_WORDS(key_words);
	__u64 found = 0, found_way = 0;

#pragma unroll
	for (int way = 0; way < PETREL_SHARED_TABLE_WAYS; way++) {
		const __u64 *entry = set + way * entry_words;
		__u64 difference = 0, take;

#pragma unroll
		for (int i = 0; i < key_words; i++)
			difference |= entry[i] ^ key[i];
		take = all_ones_if_zero(difference) & ~found;
		found |= take;
		found_way |= way & take;
	}
	*matched = found;
	return found_way & (PETREL_SHARED_TABLE_WAYS - 1);  /* the verifier's bound */
}

/* Copies into *copy the tail of the entry of `set` with this key; whether one was
 * found whole. Other CPUs may be writing it: the copy is used only if the check
 * over the key and the copy matches the entry's (a torn entry fails). */
static __always_inline int read_shared_words(const __u64 *set, const __u64 *key, int key_words, union shared_tail *copy)
{
	const int entry_words = SHARED_ENTRY_WORDS(key_words);
	__u64 found, way = shared_way(set, key, key_words, &found);
	const __u64 *entry = set + way * entry_words;

#pragma unroll
	for (int i = 0; i < PETREL_SHARED_TAIL_WORDS; i++)
		copy->words[i] = entry[key_words + i];
	return found && entry[entry_words - 1] == petrel_shared_check(key, key_words, copy->words);
}

/* The flow's shared-table entry, its tail copied into *copy: its connection, or NULL. */
static __always_inline struct petrel_conn *lookup_shared(const struct flow_tables *t, union shared_tail *copy)
{
	__u64 *set = shared_set(t);
	int found;

	if (!set)  /* never: the index is in range */
		return 0;
	if (t->v4)
		found = read_shared_words(set, t->key4_words, PETREL_SHARED_KEY_WORDS_V4, copy);
	else
		found = read_shared_words(set, (const __u64 *)t->key6, PETREL_SHARED_KEY_WORDS_V6, copy);
	return found ? &copy->tail.conn : 0;
}

/* Writes the flow's entry for conn into `set`, with its check: over the entry with
 * this key, else over the set's oldest (an empty entry counts as oldest). The key,
 * then the tail, then the check: a reader meanwhile finds a check that does not match. */
static __always_inline void write_shared_words(__u64 *set, const __u64 *key, int key_words, const struct petrel_conn *conn)
{
	const int entry_words = SHARED_ENTRY_WORDS(key_words);
	__u64 matched, match_way = shared_way(set, key, key_words, &matched);
	__u64 oldest_age = 0, oldest_way = 0, victim;
	__u32 now = bpf_jiffies64();
	union shared_tail fresh = { .tail = { .conn = *conn, .written = now } };

	/* As in shared_way: masks, not branches. */
#pragma unroll
	for (int way = 0; way < PETREL_SHARED_TABLE_WAYS; way++) {
		const __u64 *entry = set + way * entry_words;
		const struct petrel_shared_tail *written = (const void *)(entry + key_words);
		__u64 empty = all_ones_if_zero(entry[entry_words - 1]), age, older;

		age = (__u32)(now - written->written) | (empty & 0xffffffff);
		older = all_ones_if_greater(age, oldest_age);
		oldest_age = (age & older) | (oldest_age & ~older);
		oldest_way = (way & older) | (oldest_way & ~older);
	}
	victim = ((match_way & matched) | (oldest_way & ~matched)) & (PETREL_SHARED_TABLE_WAYS - 1);
	set += victim * entry_words;
#pragma unroll
	for (int i = 0; i < key_words; i++)
		set[i] = key[i];
#pragma unroll
	for (int i = 0; i < PETREL_SHARED_TAIL_WORDS; i++)
		set[key_words + i] = fresh.words[i];
	set[entry_words - 1] = petrel_shared_check(key, key_words, fresh.words);
}

/* Writes the flow's decision to the shared table. */
static __always_inline void update_shared(const struct flow_tables *t, const struct petrel_conn *conn)
{
	__u64 *set = shared_set(t);

	if (!set)  /* never: the index is in range */
		return;
	if (t->v4)
		write_shared_words(set, t->key4_words, PETREL_SHARED_KEY_WORDS_V4, conn);
	else
		write_shared_words(set, (const __u64 *)t->key6, PETREL_SHARED_KEY_WORDS_V6, conn);
}

struct choice {
	struct petrel_real *real;
	__u32 real_id;
	__u32 hash;
	__u32 vip_index;  /* PETREL_NO_VIP_INDEX until the VIP is known */
};

/* A table entry for the choice made (or confirmed) for this VIP. */
static __always_inline struct petrel_conn conn_entry(const struct choice *choice, const struct petrel_vip_meta *vip)
{
	struct petrel_conn conn = {
		.real_id = choice->real_id,
		.real_generation = choice->real->generation,
		.flow_hash = choice->hash,
		.vip_index = vip->vip_index,
		.vip_generation = vip->generation,
	};

	return conn;
}

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

/* Whether a table entry names this VIP as it is now (see vip_generations). */
static __always_inline int names_vip(const struct petrel_conn *conn, const struct petrel_vip_meta *vip)
{
	return conn->vip_index == vip->vip_index && conn->vip_generation == vip->generation;
}

/* Looks the flow up in this CPU's table, then in the shared one. This CPU's
 * table learns the flow, or its VIP as it is now, so that its next packet takes
 * the fast path (known_flow). */
static __always_inline int choice_from_tables(const struct packet *pkt, const struct petrel_vip_meta *vip,
					      const struct flow_tables *t, struct petrel_counters *counters,
					      struct choice *out)
{
	struct petrel_conn *conn = 0, learned;
	union shared_tail shared;
	int learn;

	if (t->cpu)
		conn = lookup_cpu(t);
	if (take_remembered(conn, out)) {
		count_stat(counters, PETREL_STAT_EVENT_CONNECTION_HIT);
		learn = !names_vip(conn, vip);
	} else {
		conn = lookup_shared(t, &shared);
		if (!take_remembered(conn, out))
			return 0;
		count_stat(counters, PETREL_STAT_EVENT_SHARED_TABLE_HIT);
		learn = t->cpu != 0;
	}
	/* One place writes this CPU's table (and its flow cache): the program stays small. */
	if (learn && !pkt->icmp_error) {
		learned = conn_entry(out, vip);
		update_cpu(t, &learned);
	}
	return 1;
}

/* A new decision goes to the shared table only; this CPU's table learns the flow
 * from its second packet (choice_from_tables). So a SYN costs no LRU insert, and
 * SYNs that never complete (a flood) cannot push established flows out of the
 * per-CPU tables. An entry this CPU already holds (a flow decided afresh) is
 * overwritten, or it would win over the new decision. */
static __always_inline void remember_choice(const struct flow_tables *t, const struct choice *choice,
					    const struct petrel_vip_meta *vip)
{
	struct petrel_conn conn = conn_entry(choice, vip), *cached;
	void *slot;

	if (t->cpu && lookup_cpu(t)) {
		update_cpu(t, &conn);
	} else if (t->cpu) {
		/* The flow cache may still hold the flow after the table evicted it: clear that copy too. */
		slot = cache_slot(t);
		cached = slot ? cached_conn(t, slot) : 0;
		if (cached)
			cached->real_id = PETREL_NO_REAL;
	}
	update_shared(t, &conn);
}

/* The SYN-flood guard: whether this CPU may write one more new decision to the
 * tables in the current second. Over the threshold, decisions still forward (by
 * the ring) but cost no table write and evict no established flow. */
static __always_inline int table_write_allowed(const struct petrel_config *cfg, struct petrel_counters *counters)
{
	struct petrel_flood_state *state;
	__u32 zero = 0;

	if (!cfg->syn_flood_threshold)
		return 1;
	state = bpf_map_lookup_elem(&flood_state, &zero);
	if (!state)
		return 1;
	if (second_passed(&state->window_start))
		state->decisions = 0;
	if (++state->decisions <= cfg->syn_flood_threshold)
		return 1;
	count_stat(counters, PETREL_STAT_EVENT_SYN_FLOOD);
	return 0;
}

/* The ring's real for out->hash: PARSE_OK with out filled, or DROP_NO_REAL. */
static __always_inline int ring_choice(const struct petrel_vip_meta *vip, struct choice *out)
{
	__u32 slot, ring_size = load_settings.ring_size;
	__u32 *row;

	row = bpf_map_lookup_elem(&ring, &vip->ring_row);
	slot = petrel_ring_slot(out->hash, ring_size);
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
	return PARSE_OK;
}

/* Returns PARSE_OK with out filled, or the reason no real can take the packet.
 * A flow the tables know brings its hash along; only a new decision hashes.
 * A new decision is the client's source route if it has one, else the ring's. */
static __always_inline int choose_real(const struct packet *pkt, const struct petrel_vip_meta *vip,
				       const struct petrel_config *cfg, struct petrel_counters *counters,
				       struct choice *out)
{
	int use_tables = !(vip->flags & PETREL_VIP_LRU_BYPASS);
	struct flow_tables tables;
	int reason;
	__u8 why;

	if (use_tables) {
		open_tables(pkt, &tables);
		if (!tables.cpu)
			count_stat(counters, PETREL_STAT_EVENT_NO_CPU_TABLE);
		/* A SYN opens a new connection: it always takes a fresh decision. */
		if (!pkt->tcp_syn && choice_from_tables(pkt, vip, &tables, counters, out))
			return PARSE_OK;
		if (pkt->flow.protocol == IPPROTO_TCP && !pkt->tcp_syn && !pkt->icmp_error)
			count_stat(counters, PETREL_STAT_EVENT_LRU_MISS);
	}

	out->hash = flow_hash(&pkt->flow, vip->flags);
	/* Why, for the flow log. A TCP packet other than a SYN gets here only when no table knew its flow. */
	why = use_tables && pkt->flow.protocol == IPPROTO_TCP && !pkt->tcp_syn
		? PETREL_FLOW_REASON_RING_AFTER_MISS : PETREL_FLOW_REASON_RING;
	/* One flag test: VIPs without source routes never touch the trie. */
	out->real = 0;
	if (vip->flags & PETREL_VIP_SOURCE_ROUTES) {
		out->real_id = source_routed_real_id(&pkt->flow, vip->vip_index);
		if (out->real_id != PETREL_NO_REAL)
			out->real = bpf_map_lookup_elem(&reals, &out->real_id);
	}
	if (out->real) {
		if (!pkt->icmp_error)
			count_stat(counters, PETREL_STAT_EVENT_SOURCE_ROUTED);
		why = PETREL_FLOW_REASON_SOURCE_PREFIX;
	} else {
		reason = ring_choice(vip, out);
		if (reason != PARSE_OK)
			return reason;
	}

	if (!pkt->icmp_error) {
		__u8 flags = use_tables ? 0 : PETREL_FLOW_NO_TABLES;

		count_stat(counters, PETREL_STAT_EVENT_NEW_CONNECTION);
		if (use_tables) {
			if (table_write_allowed(cfg, counters))
				remember_choice(&tables, out, vip);
			else
				flags |= PETREL_FLOW_NOT_REMEMBERED;
		}
		log_decision(pkt, vip, out->real, out->real_id, why, flags, counters);
	}
	return PARSE_OK;
}

/* Whether the fast path (known_flow) may serve the packet: not where the filter
 * asks for the VIP first; a SYN always takes a fresh decision, an ICMP error the
 * ordinary path. Tested before the call, which other packets then skip. */
static __always_inline int may_be_known(const struct packet *pkt, __u32 filter_bits)
{
	return !(filter_bits & PETREL_ADDR_VIP_FIRST) && !pkt->tcp_syn && !pkt->icmp_error;
}

/* The fast path for a packet of an established flow: this CPU's table knows the
 * flow, and the VIP that decided is still there and still the flow's VIP (same
 * index and generation, and the filter did not ask for the VIP first). Then the
 * VIP lookup is skipped. Returns 1 with out filled, else 0: the ordinary path
 * decides. Only for packets that may_be_known. Inlined: as a subprogram its call
 * and return cost more than its lookups on CPUs whose returns are mitigated. */
static __always_inline int known_flow(const struct packet *pkt, struct petrel_counters *counters, struct choice *out)
{
	struct flow_tables tables;
	struct petrel_conn *conn;
	__u32 *generation;
	__u64 from_cache;
	void *slot;

	open_tables(pkt, &tables);
	if (!tables.cpu)
		return 0;
	/* The flow cache first; on a miss, the table, whose entry the cache then keeps. */
	slot = cache_slot(&tables);
	if (!slot)
		return 0;
	conn = cached_conn(&tables, slot);
	from_cache = conn != 0;
	if (!conn) {
		conn = lookup_cpu(&tables);
		if (!conn)
			return 0;
		cache_conn(&tables, slot, conn);
	}
	generation = bpf_map_lookup_elem(&vip_generations, &conn->vip_index);
	if (!generation || *generation != conn->vip_generation || !take_remembered(conn, out))
		return 0;
	out->vip_index = conn->vip_index;
	count_stat(counters, PETREL_STAT_EVENT_CONNECTION_HIT);
	counters->count[PETREL_STAT_EVENT_FLOW_CACHE_HIT] += from_cache;  /* no branch */
	return 1;
}

#endif
