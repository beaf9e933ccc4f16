/* The balancer's maps. Layouts come from petrel_abi.h; sizes here are defaults
 * that the control plane resizes before loading (ring, vips, reals, tables). */
#ifndef PETREL_MAPS_H
#define PETREL_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "petrel_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct petrel_config);
} config SEC(".maps");

/* VIPs by family: an IPv4 key is 8 bytes, an IPv6 key 20. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PETREL_DEFAULT_MAX_VIPS);
	__type(key, struct petrel_vip_key_v4);
	__type(value, struct petrel_vip_meta);
} vips_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PETREL_DEFAULT_MAX_VIPS);
	__type(key, struct petrel_vip_key);
	__type(value, struct petrel_vip_meta);
} vips_v6 SEC(".maps");

/* See PETREL_ADDR_FILTER_SLOTS: one array read tells that an address has no VIP. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PETREL_ADDR_FILTER_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} vip_addresses SEC(".maps");

/* See petrel_vip_meta: the generation of each VIP index. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PETREL_DEFAULT_MAX_VIPS);
	__type(key, __u32);
	__type(value, __u32);
} vip_generations SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PETREL_DEFAULT_MAX_REALS);
	__type(key, __u32);
	__type(value, struct petrel_real);
} reals SEC(".maps");

/* Set before loading; see struct petrel_load_settings. */
const volatile struct petrel_load_settings load_settings = {
	.ring_size = PETREL_DEFAULT_RING_SIZE,
	.flow_cache_shift = PETREL_DEFAULT_FLOW_CACHE_SHIFT,
	.vip_cache_shift = PETREL_DEFAULT_VIP_CACHE_SHIFT,
	.ticks_per_second = 1000,  /* set by the loader from the kernel's tick length */
	.shared_sets = PETREL_DEFAULT_CONN_TABLE_SIZE / PETREL_SHARED_TABLE_WAYS,
};

/* Rows of ring_size real ids, two per VIP (see petrel_abi.h). The value size is
 * set before loading, so the map is declared by sizes, not by a C type. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * PETREL_DEFAULT_MAX_VIPS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, PETREL_DEFAULT_RING_SIZE * sizeof(__u32));
} ring SEC(".maps");

/* Connection tables, per family (IPv4 keys are 16 bytes, IPv6 keys 40): one
 * LRU per CPU (created by the control plane and stored here by CPU number), and
 * one shared set-associative table that every CPU also consults (below), so a
 * flow that moves to another CPU keeps its real. */
struct conn_table_v4 {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PETREL_DEFAULT_CONN_TABLE_SIZE);
	__type(key, struct petrel_flow_key_v4);
	__type(value, struct petrel_conn);
};

struct conn_table_v6 {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PETREL_DEFAULT_CONN_TABLE_SIZE);
	__type(key, struct petrel_flow_key);
	__type(value, struct petrel_conn);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, PETREL_MAX_CPUS);
	__type(key, __u32);
	__array(values, struct conn_table_v4);
} conn_tables_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, PETREL_MAX_CPUS);
	__type(key, __u32);
	__array(values, struct conn_table_v6);
} conn_tables_v6 SEC(".maps");

/* The VIP cache in front of vips_v4 and vips_v6 (see petrel_vip_cache_slot),
 * and the epoch its slots must carry: the control plane bumps it after it
 * writes VIP entries, and every slot filled before is ignored from then on. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1u << PETREL_DEFAULT_VIP_CACHE_SHIFT);  /* set by the loader */
	__type(key, __u32);
	__type(value, struct petrel_vip_cache_slot);
} vip_cache SEC(".maps");

volatile __u64 vip_epoch SEC(".data.vips") = 0;

/* The flow caches in front of the per-CPU tables (see petrel_flow_cache_v4). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1u << PETREL_DEFAULT_FLOW_CACHE_SHIFT);  /* set by the loader */
	__type(key, __u32);
	__type(value, struct petrel_flow_cache_v4);
} flow_cache_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1u << PETREL_DEFAULT_FLOW_CACHE_SHIFT);  /* set by the loader */
	__type(key, __u32);
	__type(value, struct petrel_flow_cache_v6);
} flow_cache_v6 SEC(".maps");

/* The shared connection tables: load_settings.shared_sets sets each (see
 * struct petrel_shared_set_v4 and the loader's sizes). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PETREL_DEFAULT_CONN_TABLE_SIZE / PETREL_SHARED_TABLE_WAYS);
	__type(key, __u32);
	__type(value, struct petrel_shared_set_v4);
} conn_shared_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PETREL_DEFAULT_CONN_TABLE_SIZE / PETREL_SHARED_TABLE_WAYS);
	__type(key, __u32);
	__type(value, struct petrel_shared_set_v6);
} conn_shared_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct petrel_counters);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct petrel_flood_state);
} flood_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PETREL_DEFAULT_MAX_VIPS);
	__type(key, __u32);
	__type(value, struct petrel_traffic);
} vip_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PETREL_DEFAULT_MAX_REALS);
	__type(key, __u32);
	__type(value, struct petrel_traffic);
} real_stats SEC(".maps");

#endif
