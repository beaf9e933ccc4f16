/* Bob Jenkins' lookup3 hash (public domain), the variant the Linux kernel calls
 * jhash. Swift's FlowHash implements the same functions, so the control plane can
 * predict which real the data plane picks. */
#ifndef PETREL_JHASH_H
#define PETREL_JHASH_H

#include <linux/types.h>

#define PETREL_JHASH_INITVAL 0xdeadbeefu

static __always_inline __u32 rol32(__u32 word, unsigned int shift)
{
	return (word << shift) | (word >> (32 - shift));
}

#define jhash_mix(a, b, c)                        \
	do {                                      \
		a -= c; a ^= rol32(c, 4);  c += b; \
		b -= a; b ^= rol32(a, 6);  a += c; \
		c -= b; c ^= rol32(b, 8);  b += a; \
		a -= c; a ^= rol32(c, 16); c += b; \
		b -= a; b ^= rol32(a, 19); a += c; \
		c -= b; c ^= rol32(b, 4);  b += a; \
	} while (0)

#define jhash_final(a, b, c)                      \
	do {                                      \
		c ^= b; c -= rol32(b, 14);         \
		a ^= c; a -= rol32(c, 11);         \
		b ^= a; b -= rol32(a, 25);         \
		c ^= b; c -= rol32(b, 16);         \
		a ^= c; a -= rol32(c, 4);          \
		b ^= a; b -= rol32(a, 14);         \
		c ^= b; c -= rol32(b, 24);         \
	} while (0)

static __always_inline __u32 jhash_3words(__u32 a, __u32 b, __u32 c, __u32 seed)
{
	a += PETREL_JHASH_INITVAL + (3 << 2) + seed;
	b += PETREL_JHASH_INITVAL + (3 << 2) + seed;
	c += PETREL_JHASH_INITVAL + (3 << 2) + seed;
	jhash_final(a, b, c);
	return c;
}

static __always_inline __u32 jhash_4words(__u32 k0, __u32 k1, __u32 k2, __u32 k3, __u32 seed)
{
	__u32 a, b, c;

	a = b = c = PETREL_JHASH_INITVAL + (4 << 2) + seed;
	a += k0;
	b += k1;
	c += k2;
	jhash_mix(a, b, c);
	a += k3;
	jhash_final(a, b, c);
	return c;
}

#endif
