/* Petrel's forwarding program. Read it as the packet's journey: parse, match a
 * VIP, pick a real (a QUIC connection ID's server id, else connection tables,
 * then the Maglev ring), encapsulate (IP-in-IP or GUE),
 * transmit. Echo requests to VIP addresses, and packets too big to encapsulate,
 * are answered with ICMP. Anything that is not ours goes to the kernel untouched. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "petrel_abi.h"
#include "lib/maps.h"
#include "lib/stats.h"
#include "lib/parse.h"
#include "lib/select.h"
#include "lib/encap.h"
#include "lib/quic.h"
#include "lib/icmp.h"
#include "lib/capture.h"

/* too_big_outer_len: what answer_too_big needs for DROP_TOO_BIG (see balance). */
static __always_inline int verdict_for(struct xdp_md *ctx, int reason, __u32 too_big_outer_len)
{
	switch (reason) {
	case PETREL_STAT_FORWARD:
		return XDP_TX;
	case PETREL_STAT_DROP_TOO_BIG:  /* answered with ICMP if it may be (its count moves to reply_too_big) */
		return answer_too_big(ctx, too_big_outer_len);
	case PETREL_STAT_DROP_MALFORMED:
	case PETREL_STAT_DROP_NO_REAL:
	case PETREL_STAT_DROP_ENCAP_FAILED:
	case PETREL_STAT_DROP_NO_CONFIG:
		return XDP_DROP;
	default:
		return XDP_PASS;
	}
}

/* Not ours, or an ICMP error about a flow that is not ours. */
static __always_inline int not_ours(const struct packet *pkt)
{
	return pkt->icmp_error ? PETREL_STAT_PASS_ICMP : PETREL_STAT_PASS_NOT_VIP;
}

/* The ordinary path for a packet to an address that has VIPs: find its VIP, then
 * its real (a QUIC connection ID's server id, else the connection tables and the
 * ring). Returns PARSE_OK with out filled, or the reason the packet ends here;
 * out->vip_index is set as soon as the VIP is known. */
static __always_inline int decide(struct xdp_md *ctx, const struct packet *pkt, const struct petrel_config *cfg,
				  __u32 bits, struct petrel_counters *counters, struct choice *out)
{
	struct petrel_vip_meta *vip;
	int reason;

	vip = find_vip(&pkt->flow, bits, counters);
	if (!vip)
		return not_ours(pkt);
	out->vip_index = vip->vip_index;
	if (!cfg)
		return PETREL_STAT_DROP_NO_CONFIG;

	/* A QUIC short header names its real in the connection ID; else the tables and ring. */
	if (!(vip->flags & PETREL_VIP_QUIC) || !quic_choose_real(ctx, pkt, vip, counters, out)) {
		reason = choose_real(pkt, vip, cfg, counters, out);
		if (reason != PARSE_OK)
			return reason;
	}
	return PARSE_OK;
}

/* too_big_outer_len: for DROP_TOO_BIG, the encapsulation the chosen real needs.
 * `facts` learns the VIP and the real as they are found, for a capture. */
static __always_inline int balance(struct xdp_md *ctx, struct petrel_counters *counters, __u32 *too_big_outer_len,
				   struct capture_facts *facts)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 frame_len = end - data;
	struct petrel_config *cfg;
	struct packet pkt __attribute__((aligned(8))) = {};  /* its flow key is read as 64-bit words (flow cache) */
	struct choice choice = {};
	__u32 zero = 0, bits;
	int reason;

	choice.vip_index = PETREL_NO_VIP_INDEX;  /* assigned, not initialised: an initialiser would be a .rodata template */
	/* The length now, as a number: kept as the packet's pointers instead, it made
	 * the verifier walk everything after parsing once per header layout (twice
	 * the instructions processed). */
	asm volatile("" : "+r"(frame_len));

	reason = parse_packet(data, end, &pkt);
	if (reason != PARSE_OK) {
		if (reason == PETREL_STAT_PASS_ICMP)  /* maybe an echo request: its program answers or passes it */
			bpf_tail_call(ctx, &echo_program, 0);
		return reason;
	}

	bits = vip_address_bits(&pkt.flow);
	if (!bits)
		return not_ours(&pkt);
	cfg = bpf_map_lookup_elem(&config, &zero);
	if (cfg && cfg->mtu == 0)
		cfg = 0;

	/* A known flow skips the VIP lookup; anything else finds its VIP first. */
	if (!cfg || !may_be_known(&pkt, bits) || !known_flow(&pkt, counters, &choice)) {
		reason = decide(ctx, &pkt, cfg, bits, counters, &choice);
		facts->vip = choice.vip_index + 1;  /* 0 when no VIP was found */
		if (reason != PARSE_OK)
			return reason;
	}

	facts->vip = choice.vip_index + 1;
	facts->real_id = choice.real_id;

	reason = encapsulate(ctx, &pkt, choice.real, cfg, choice.hash);
	if (reason == PETREL_STAT_DROP_TOO_BIG)
		*too_big_outer_len = outer_header_len(choice.real);
	if (reason != PETREL_STAT_FORWARD)
		return reason;

	count_traffic(&vip_stats, choice.vip_index, frame_len);
	count_traffic(&real_stats, choice.real_id, frame_len);
	if (pkt.icmp_error)
		count_stat(counters, PETREL_STAT_EVENT_ICMP_FORWARD);
	if (real_uses_gue(choice.real))
		count_stat(counters, PETREL_STAT_EVENT_GUE_FORWARD);
	return PETREL_STAT_FORWARD;
}

SEC("xdp")
int petrel_balancer(struct xdp_md *ctx)
{
	struct petrel_counters *counters = cpu_counters();
	struct capture_facts facts = {};
	__u32 too_big_outer_len = 0;
	int reason;

	if (!counters)  /* never: the array has its one entry on every CPU */
		return XDP_PASS;
	count_stat(counters, PETREL_STAT_RX);
	/* With no capture running, each check is one read of a global and a branch. The
	 * second reads it again rather than keep it across balance(): the verifier then
	 * needs no second walk of balance(), and capture_packet skips a stale copy. */
	if (capture_slots_active)
		capture_keep_received(ctx);
	reason = balance(ctx, counters, &too_big_outer_len, &facts);
	count_stat(counters, reason);
	if (capture_slots_active)
		capture_packet(ctx, capture_slots_active, reason, facts.vip, facts.real_id);
	return verdict_for(ctx, reason, too_big_outer_len);
}

/* The balancer's tail call for ICMP that is not an error about a flow (RX was
 * counted there): echo requests to VIP addresses are answered, the rest passed. */
SEC("xdp")
int petrel_echo_reply(struct xdp_md *ctx)
{
	struct petrel_counters *counters = cpu_counters();
	int reason;

	if (!counters)
		return XDP_PASS;
	reason = echo_answer(ctx, counters);
	count_stat(counters, reason);
	if (capture_slots_active)  /* the balancer kept the received copy before its tail call */
		capture_after_tail_call(ctx, capture_slots_active, reason);
	return reason == PETREL_STAT_REPLY_ECHO ? XDP_TX : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
