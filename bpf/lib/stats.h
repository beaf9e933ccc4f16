/* Per-CPU counters: no atomics needed, the control plane sums the CPUs. */
#ifndef PETREL_STATS_H
#define PETREL_STATS_H

#include "maps.h"

/* This CPU's counter record, looked up once per packet. */
static __always_inline struct petrel_counters *cpu_counters(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&stats, &zero);
}

static __always_inline void count_stat(struct petrel_counters *counters, __u32 reason)
{
	if (reason < PETREL_STAT_COUNT)
		counters->count[reason] += 1;
}

static __always_inline void count_traffic(void *map, __u32 index, __u64 bytes)
{
	struct petrel_traffic *traffic = bpf_map_lookup_elem(map, &index);

	if (traffic) {
		traffic->packets += 1;
		traffic->bytes += bytes;
	}
}

#endif
