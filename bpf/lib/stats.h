/* Per-CPU counters: no atomics needed, the control plane sums the CPUs. */
#ifndef PETREL_STATS_H
#define PETREL_STATS_H

#include "maps.h"

static __always_inline void count_stat(__u32 reason)
{
	__u64 *counter = bpf_map_lookup_elem(&stats, &reason);

	if (counter)
		*counter += 1;
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
