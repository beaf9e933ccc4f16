/* The flow log: one record per sampled decision (a real chosen afresh for a
 * flow) into a ring buffer that petreld reads while someone follows the log.
 * Off, it costs one array read per decision and nothing on a table hit. */
#ifndef PETREL_FLOWLOG_H
#define PETREL_FLOWLOG_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "petrel_abi.h"
#include "parse.h"
#include "stats.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, PETREL_FLOW_LOG_RING_BYTES);
} flow_log SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct petrel_flow_log_settings);
} flow_log_settings SEC(".maps");

/* Logs the decision if the log is on and this one is sampled; a full ring drops
 * the record and counts it. */
static __always_inline void log_decision(const struct packet *pkt, const struct petrel_vip_meta *vip,
					 const struct petrel_real *real, __u32 real_id, __u8 reason, __u8 flags,
					 struct petrel_counters *counters)
{
	struct petrel_flow_log_settings *settings;
	struct petrel_flow_record *record;
	__u32 zero = 0, every;
	__u64 seen;

	settings = bpf_map_lookup_elem(&flow_log_settings, &zero);
	if (!settings || !settings->sample_every)
		return;  /* nobody follows */
	every = settings->sample_every;
	/* Per-CPU and counted, so 1 in N is exact on each CPU. */
	seen = counters->count[PETREL_STAT_EVENT_FLOW_LOG_CANDIDATE]++;
	if (every > 1 && seen % every)
		return;
	record = bpf_ringbuf_reserve(&flow_log, sizeof(*record), 0);
	if (!record) {
		count_stat(counters, PETREL_STAT_EVENT_FLOW_LOG_LOST);
		return;
	}
	record->time_ns = bpf_ktime_get_ns();
	__builtin_memcpy(&record->flow, &pkt->flow, sizeof(record->flow));
	__builtin_memcpy(record->real_be, real->addr_be, sizeof(record->real_be));
	record->vip_index = vip->vip_index;
	record->real_id = real_id;
	record->cpu = bpf_get_smp_processor_id();
	record->real_family = real->family;
	record->reason = reason;
	record->flags = flags;
	record->pad = 0;
	bpf_ringbuf_submit(record, bpf_ringbuf_query(&flow_log, BPF_RB_AVAIL_DATA) >= PETREL_FLOW_LOG_WAKEUP_BYTES
				   ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	count_stat(counters, PETREL_STAT_EVENT_FLOW_LOG_EMITTED);
}

#endif
