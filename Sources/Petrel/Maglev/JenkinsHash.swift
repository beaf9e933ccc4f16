/// Bob Jenkins' lookup3 hash, the variant the Linux kernel calls `jhash`.
///
/// Every function here is bit-for-bit identical to its namesake in
/// `bpf/lib/jhash.h`: the control plane uses them to predict which real the data
/// plane picks, so any divergence would make that prediction wrong.
public enum JenkinsHash {
    /// The lookup3 initial value (`PETREL_JHASH_INITVAL`).
    public static let initialValue: UInt32 = 0xdead_beef

    /// Hashes three 32-bit words; equals `jhash_3words(a, b, c, seed)`.
    @inlinable
    public static func hash3(_ a: UInt32, _ b: UInt32, _ c: UInt32, seed: UInt32) -> UInt32 {
        let start = initialValue &+ (3 << 2) &+ seed
        var a = a &+ start, b = b &+ start, c = c &+ start
        final(&a, &b, &c)
        return c
    }

    /// Hashes four 32-bit words; equals `jhash_4words(k0, k1, k2, k3, seed)`.
    @inlinable
    public static func hash4(_ k0: UInt32, _ k1: UInt32, _ k2: UInt32, _ k3: UInt32, seed: UInt32) -> UInt32 {
        let start = initialValue &+ (4 << 2) &+ seed
        var a = start &+ k0, b = start &+ k1, c = start &+ k2
        mix(&a, &b, &c)
        a = a &+ k3
        final(&a, &b, &c)
        return c
    }

    // MARK: - lookup3 steps

    @inlinable
    static func rotl(_ word: UInt32, _ shift: UInt32) -> UInt32 {
        (word << shift) | (word >> (32 - shift))
    }

    /// `jhash_mix`: reversibly mixes three words between input blocks.
    @inlinable
    static func mix(_ a: inout UInt32, _ b: inout UInt32, _ c: inout UInt32) {
        a = a &- c; a ^= rotl(c, 4); c = c &+ b
        b = b &- a; b ^= rotl(a, 6); a = a &+ c
        c = c &- b; c ^= rotl(b, 8); b = b &+ a
        a = a &- c; a ^= rotl(c, 16); c = c &+ b
        b = b &- a; b ^= rotl(a, 19); a = a &+ c
        c = c &- b; c ^= rotl(b, 4); b = b &+ a
    }

    /// `jhash_final`: the last avalanche; the result is left in `c`.
    @inlinable
    static func final(_ a: inout UInt32, _ b: inout UInt32, _ c: inout UInt32) {
        c ^= b; c = c &- rotl(b, 14)
        a ^= c; a = a &- rotl(c, 11)
        b ^= a; b = b &- rotl(a, 25)
        c ^= b; c = c &- rotl(b, 16)
        a ^= c; a = a &- rotl(c, 4)
        b ^= a; b = b &- rotl(a, 14)
        c ^= b; c = c &- rotl(b, 24)
    }
}
