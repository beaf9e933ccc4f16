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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PETREL_DEFAULT_MAX_VIPS);
	__type(key, struct petrel_vip_key);
	__type(value, struct petrel_vip_meta);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PETREL_DEFAULT_MAX_REALS);
	__type(key, __u32);
	__type(value, struct petrel_real);
} reals SEC(".maps");

/* Set before loading; see struct petrel_load_settings. */
const volatile struct petrel_load_settings load_settings = {
	.ring_size = PETREL_DEFAULT_RING_SIZE,
};

/* Rows of ring_size real ids, two per VIP (see petrel_abi.h). The value size is
 * set before loading, so the map is declared by sizes, not by a C type. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * PETREL_DEFAULT_MAX_VIPS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, PETREL_DEFAULT_RING_SIZE * sizeof(__u32));
} ring SEC(".maps");

/* Connection tables: one LRU per CPU (created by the control plane and stored
 * here by CPU number), and one shared LRU that every CPU also consults, so a
 * flow that moves to another CPU keeps its real. */
struct conn_table {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PETREL_DEFAULT_CONN_TABLE_SIZE);
	__type(key, struct petrel_flow_key);
	__type(value, struct petrel_conn);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, PETREL_MAX_CPUS);
	__type(key, __u32);
	__array(values, struct conn_table);
} conn_tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PETREL_DEFAULT_CONN_TABLE_SIZE);
	__type(key, struct petrel_flow_key);
	__type(value, struct petrel_conn);
} conn_shared SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PETREL_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

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
