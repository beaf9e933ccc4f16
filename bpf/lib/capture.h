/* Packet capture for `petrel capture`: copies of the packets a capture slot
 * selects (by outcome, VIP, real, family, protocol, 1 in N) go to user space
 * through a ring buffer, as received, as sent (encapsulated), or both. With no
 * capture running, a packet costs two reads of capture_slots_active and two
 * branches: one before the balancer and one after it (see petrel_balancer). */
#ifndef PETREL_CAPTURE_H
#define PETREL_CAPTURE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "petrel_abi.h"

/* Bit N set while capture slot N runs; written by the control plane. */
volatile __u32 capture_slots_active SEC(".data.capture") = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PETREL_CAPTURE_SLOTS);
	__type(key, __u32);
	__type(value, struct petrel_capture_filter);
} capture_filters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PETREL_CAPTURE_SLOTS);
	__type(key, __u32);
	__type(value, struct petrel_capture_counts);
} capture_counts SEC(".maps");

/* The packet as received, kept per CPU while the balancer may rewrite it. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct petrel_capture_record);
} capture_received_copy SEC(".maps");

/* About 7,000 records; when it is full, records are lost and counted. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 2 * 1024 * 1024);
} capture_ring SEC(".maps");

/* Wakes the reader only when a batch waits (see PETREL_CAPTURE_WAKEUP_BYTES). */
static __always_inline __u64 capture_wakeup(void)
{
	return bpf_ringbuf_query(&capture_ring, BPF_RB_AVAIL_DATA) >= PETREL_CAPTURE_WAKEUP_BYTES ?
		BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

/* Copies the packet's first bytes; returns how many (0 if it could not). */
static __always_inline __u16 capture_load(struct xdp_md *ctx, __u8 *to, __u32 length)
{
	__u32 n = length;

	if (n > PETREL_CAPTURE_SNAP_LEN)
		n = PETREL_CAPTURE_SNAP_LEN;
	/* Keeps clang from folding the checks into a form the verifier cannot bound. */
	asm volatile("" : "+r"(n));
	if (n < 1 || n > PETREL_CAPTURE_SNAP_LEN)
		return 0;
	if (bpf_xdp_load_bytes(ctx, 0, to, n))
		return 0;
	return n;
}

/* What the balancer learned about a packet, as plain numbers (no pointers: the
 * verifier keeps pruning): vip_index + 1 and the real id, 0 when none. */
struct capture_facts {
	__u32 vip;
	__u32 real_id;
};

/* The received copy's direction while it waits for capture_packet: a copy without
 * it was not kept for this packet (capture started between the balancer's two
 * checks) and is not recorded. */
#define CAPTURE_COPY_FRESH 0xff

/* Keeps the packet as it arrived, before the balancer decides (and may rewrite it).
 * The capture functions that packets call are global (__noinline): the verifier
 * checks each once, not once per path of the balancer that leads to it. */
__noinline int capture_keep_received(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct petrel_capture_record *copy = bpf_map_lookup_elem(&capture_received_copy, &zero);

	if (!copy)
		return 0;
	copy->direction = CAPTURE_COPY_FRESH;
	copy->length = (__u32)(ctx->data_end - ctx->data);
	copy->captured = capture_load(ctx, copy->data, copy->length);
	return 0;
}

/* Family and IP protocol of the received copy (one VLAN tag skipped); ICMPv6 is
 * reported as IPPROTO_ICMP. */
static __always_inline void capture_classify(const struct petrel_capture_record *copy, __u8 *family, __u8 *protocol)
{
	__u32 l2 = ETH_HLEN;
	__u16 type;

	*family = 0;
	*protocol = 0;
	if (copy->captured < ETH_HLEN + 4)
		return;
	type = (__u16)copy->data[12] << 8 | copy->data[13];
	if (type == ETH_P_8021Q || type == ETH_P_8021AD) {
		type = (__u16)copy->data[16] << 8 | copy->data[17];
		l2 += 4;
	}
	if (type == ETH_P_IP && copy->captured > l2 + 9) {
		*family = PETREL_FAMILY_IPV4;
		*protocol = copy->data[l2 + 9];
	} else if (type == ETH_P_IPV6 && copy->captured > l2 + 6) {
		*family = PETREL_FAMILY_IPV6;
		*protocol = copy->data[l2 + 6];
	}
	if (*protocol == IPPROTO_ICMPV6)  /* one filter value for both ICMPs */
		*protocol = IPPROTO_ICMP;
}

/* One slot's record written or lost. Slots are visited by four calls with
 * constant keys, not a loop: the verifier then needs no loop state at all. */
static __always_inline void capture_count_slot(__u32 slot, __u32 slots, int lost)
{
	struct petrel_capture_counts *counts;

	if (!(slots & (1u << slot)))
		return;
	counts = bpf_map_lookup_elem(&capture_counts, &slot);
	if (!counts)
		return;
	if (lost)
		counts->lost += 1;
	else
		counts->recorded += 1;
}

static __always_inline void capture_count(__u32 slots, int lost)
{
	capture_count_slot(0, slots, lost);
	capture_count_slot(1, slots, lost);
	capture_count_slot(2, slots, lost);
	capture_count_slot(3, slots, lost);
}

/* Whether slot `slot` (running: a bit of `active`) takes this packet, per direction. */
static __always_inline void capture_select_slot(__u32 slot, __u32 active, int reason, __u32 vip, __u32 real_id, __u8 family,
						__u8 protocol, __u32 *received, __u32 *sent)
{
	struct petrel_capture_filter *filter;
	struct petrel_capture_counts *counts;

	if (!(active & (1u << slot)))
		return;
	filter = bpf_map_lookup_elem(&capture_filters, &slot);
	counts = bpf_map_lookup_elem(&capture_counts, &slot);
	if (!filter || !counts)
		return;
	if (!(filter->outcomes & (1ull << reason)) || (filter->vip && filter->vip != vip) ||
	    (filter->real_id && filter->real_id != real_id) || (filter->family && filter->family != family) ||
	    (filter->protocol && filter->protocol != protocol))
		return;
	counts->matched += 1;
	if (filter->sample_every > 1 && (counts->matched - 1) % filter->sample_every)
		return;
	if (filter->directions & PETREL_CAPTURE_RECEIVED)
		*received |= 1u << slot;
	if ((filter->directions & PETREL_CAPTURE_SENT) && reason == PETREL_STAT_FORWARD)
		*sent |= 1u << slot;
}

/* The slots among `active` that take this packet, per direction. */
static __always_inline void capture_select(__u32 active, int reason, __u32 vip, __u32 real_id, __u8 family,
					   __u8 protocol, __u32 *received, __u32 *sent)
{
	capture_select_slot(0, active, reason, vip, real_id, family, protocol, received, sent);
	capture_select_slot(1, active, reason, vip, real_id, family, protocol, received, sent);
	capture_select_slot(2, active, reason, vip, real_id, family, protocol, received, sent);
	capture_select_slot(3, active, reason, vip, real_id, family, protocol, received, sent);
}

/* After the decision: records the packet for every running slot that selects it.
 * `vip` is the VIP's vip_index + 1 (0: none), `real_id` the real chosen (0: none). */
__noinline int capture_packet(struct xdp_md *ctx, __u32 active, int reason, __u32 vip, __u32 real_id)
{
	__u32 zero = 0, received = 0, sent = 0;
	struct petrel_capture_record *copy = bpf_map_lookup_elem(&capture_received_copy, &zero);
	struct petrel_capture_record *record;
	__u8 family, protocol;
	__u64 now;

	if (!copy || reason < 0 || reason >= 64)
		return 0;
	if (copy->direction != CAPTURE_COPY_FRESH)
		return 0;
	copy->direction = 0;  /* used: a later packet that was not kept cannot take it */
	capture_classify(copy, &family, &protocol);
	capture_select(active, reason, vip, real_id, family, protocol, &received, &sent);
	if (!(received | sent))
		return 0;
	now = bpf_ktime_get_ns();
	if (received) {
		copy->time_ns = now;
		copy->slots = received;
		copy->vip = vip;
		copy->real_id = real_id;
		copy->reason = reason;
		copy->direction = PETREL_CAPTURE_RECEIVED;
		capture_count(received, bpf_ringbuf_output(&capture_ring, copy, sizeof(*copy), capture_wakeup()) != 0);
	}
	if (sent) {
		record = bpf_ringbuf_reserve(&capture_ring, sizeof(*record), 0);
		if (!record) {
			capture_count(sent, 1);
			return 0;
		}
		record->time_ns = now;
		record->slots = sent;
		record->vip = vip;
		record->real_id = real_id;
		record->length = (__u32)(ctx->data_end - ctx->data);
		record->captured = capture_load(ctx, record->data, record->length);
		record->reason = reason;
		record->direction = PETREL_CAPTURE_SENT;
		bpf_ringbuf_submit(record, capture_wakeup());
		capture_count(sent, 0);
	}
	return 0;
}

/* In a program the balancer tail-called (the echo reply), which keeps the packet's
 * length: a received copy of another length is a previous packet's (capture was
 * switched on between the two programs) and is not recorded. */
static __always_inline void capture_after_tail_call(struct xdp_md *ctx, __u32 active, int reason)
{
	__u32 zero = 0;
	struct petrel_capture_record *copy = bpf_map_lookup_elem(&capture_received_copy, &zero);

	if (!copy || copy->length != (__u32)(ctx->data_end - ctx->data))
		return;
	capture_packet(ctx, active, reason, 0, 0);
}

#endif
