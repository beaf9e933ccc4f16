/* Internet checksum of a freshly written IPv4 header. */
#ifndef PETREL_CSUM_H
#define PETREL_CSUM_H

#include <linux/ip.h>

static __always_inline __u16 ipv4_header_checksum(const struct iphdr *ip)
{
	const __u16 *word = (const __u16 *)ip;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += word[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* The same checksum for a header still in registers, as its five 32-bit words
 * in memory order: the forwarding path computes it before writing the header,
 * instead of reading back what it just wrote. */
static __always_inline __u32 halves_sum(__u32 word)
{
	return (word & 0xffff) + (word >> 16);
}

static __always_inline __u16 ipv4_words_checksum(__u32 w0, __u32 w1, __u32 w2, __u32 w3, __u32 w4)
{
	__u32 sum = halves_sum(w0) + halves_sum(w1) + halves_sum(w2) + halves_sum(w3) + halves_sum(w4);

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

#endif
