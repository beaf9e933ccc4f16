/* For the ring-buffer reader's tests: each run writes one record (a sequence
 * number taken from the packet, and the packet's length) into a ring buffer,
 * or counts it as lost when the ring is full. A packet whose fifth byte is 1
 * submits without waking the reader (BPF_RB_NO_WAKEUP). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct echo_record {
	__u32 sequence;
	__u32 length;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} echo_records SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} echo_lost SEC(".maps");

SEC("xdp")
int petrel_ringbuf_echo(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct echo_record *record;
	__u32 zero = 0;
	__u64 *lost;

	if (data + sizeof(__u32) + 1 > data_end)
		return XDP_ABORTED;
	record = bpf_ringbuf_reserve(&echo_records, sizeof(*record), 0);
	if (!record) {
		lost = bpf_map_lookup_elem(&echo_lost, &zero);
		if (lost)
			__sync_fetch_and_add(lost, 1);
		return XDP_DROP;
	}
	record->sequence = *(__u32 *)data;
	record->length = (__u32)(data_end - data);
	bpf_ringbuf_submit(record, *((__u8 *)data + 4) == 1 ? BPF_RB_NO_WAKEUP : 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
