/* Petrel's forwarding program. Read it as the packet's journey: parse, match a
 * VIP, pick a real (a QUIC connection ID's server id, else connection tables,
 * then the Maglev ring), encapsulate (IP-in-IP or GUE),
 * transmit. Anything that is not ours goes to the kernel untouched. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "petrel_abi.h"
#include "lib/maps.h"
#include "lib/stats.h"
#include "lib/parse.h"
#include "lib/select.h"
#include "lib/encap.h"
#include "lib/quic.h"

static __always_inline int verdict_for(int reason)
{
	switch (reason) {
	case PETREL_STAT_FORWARD:
		return XDP_TX;
	case PETREL_STAT_DROP_MALFORMED:
	case PETREL_STAT_DROP_NO_REAL:
	case PETREL_STAT_DROP_TOO_BIG:
	case PETREL_STAT_DROP_ENCAP_FAILED:
	case PETREL_STAT_DROP_NO_CONFIG:
		return XDP_DROP;
	default:
		return XDP_PASS;
	}
}

static __always_inline int balance(struct xdp_md *ctx, struct petrel_counters *counters)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 frame_len = end - data;
	struct petrel_vip_meta *vip;
	struct petrel_config *cfg;
	struct packet pkt = {};
	struct choice choice = {};
	__u32 zero = 0;
	int reason;

	reason = parse_packet(data, end, &pkt);
	if (reason != PARSE_OK)
		return reason;

	vip = find_vip(&pkt.flow);
	if (!vip)
		return pkt.icmp_error ? PETREL_STAT_PASS_ICMP : PETREL_STAT_PASS_NOT_VIP;

	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg || cfg->mtu == 0)
		return PETREL_STAT_DROP_NO_CONFIG;

	/* A QUIC short header names its real in the connection ID; else the tables and ring. */
	if (!(vip->flags & PETREL_VIP_QUIC) || !quic_choose_real(ctx, &pkt, vip, counters, &choice)) {
		reason = choose_real(&pkt, vip, cfg, counters, &choice);
		if (reason != PARSE_OK)
			return reason;
	}

	reason = encapsulate(ctx, &pkt, choice.real, cfg, choice.hash);
	if (reason != PETREL_STAT_FORWARD)
		return reason;

	count_traffic(&vip_stats, vip->vip_index, frame_len);
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
	int reason;

	if (!counters)  /* never: the array has its one entry on every CPU */
		return XDP_PASS;
	count_stat(counters, PETREL_STAT_RX);
	reason = balance(ctx, counters);
	count_stat(counters, reason);
	return verdict_for(reason);
}

char LICENSE[] SEC("license") = "GPL";
