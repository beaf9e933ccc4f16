import CPetrelABI

/// A block of client addresses in CIDR form: `10.0.0.0/8`, `fd00:1::/32`.
/// The value keeps what was written; `Vip.validate` refuses a prefix with bits
/// set after its length (`10.1.2.3/8`), which is more likely a typo than a wish.
public struct IPPrefix: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    public init(address: IPAddress, length: Int) {
        self.address = address
        self.length = length
    }

    /// Parses `address/length`; nil unless both parts read (the length's range is `Vip.validate`'s rule).
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(String(parts[0])),
              !parts[1].isEmpty, parts[1].count <= 3, parts[1].allSatisfy({ $0 >= "0" && $0 <= "9" }), let length = Int(parts[1])
        else { return nil }
        self.init(address: address, length: length)
    }

    /// 32 for IPv4, 128 for IPv6.
    public var maxLength: Int { address.family == .ipv4 ? 32 : 128 }

    /// The prefix with every bit after `length` cleared: what `10.1.2.3/8` should have been.
    public var network: IPPrefix {
        IPPrefix(address: IPPrefix.masked(address, to: length), length: length)
    }

    /// Whether `other` (of the same family) falls in this prefix.
    public func contains(_ other: IPAddress) -> Bool {
        other.family == address.family && IPPrefix.masked(other, to: length) == IPPrefix.masked(address, to: length)
    }

    public var description: String { "\(address)/\(length)" }

    /// By address, then length.
    public static func < (lhs: IPPrefix, rhs: IPPrefix) -> Bool {
        (lhs.address, lhs.length) < (rhs.address, rhs.length)
    }

    static func masked(_ address: IPAddress, to length: Int) -> IPAddress {
        // IPv4 lives in the top 32 bits of `high`; the bits a prefix keeps are counted from the top.
        let keep = max(0, min(length, address.family == .ipv4 ? 32 : 128))
        func mask(_ bits: Int) -> UInt64 { bits <= 0 ? 0 : bits >= 64 ? .max : ~(UInt64.max >> UInt64(bits)) }
        let high = address.high & mask(keep), low = address.low & mask(keep - 64)
        return address.family == .ipv4 ? .v4(UInt32(truncatingIfNeeded: high >> 32)) : .v6(high: high, low: low)
    }
}

/// A client prefix pinned to one real of its VIP: new flows from that prefix go
/// to that real, the longest matching prefix winning. While the real is out of
/// service (weight 0: drained, or failing its health check) its prefix's new
/// flows are placed by the ring, like everyone else's.
public struct SourceRoute: Hashable, Sendable, CustomStringConvertible {
    public var prefix: IPPrefix
    /// The real's address; must be one of the VIP's reals.
    public var real: IPAddress

    public init(prefix: IPPrefix, real: IPAddress) {
        self.prefix = prefix
        self.real = real
    }

    /// `10.0.0.0/8=198.18.3.11`, as the CLI takes it.
    public var description: String { "\(prefix)=\(real)" }

    /// The most source routes the data plane holds, every VIP's together (its LPM
    /// trie's size, PETREL_MAX_SOURCE_ROUTES); so also the most one VIP may have.
    public static let maxCount = Int(PETREL_MAX_SOURCE_ROUTES)
}

extension Vip {
    /// The route that decides for a client at `source`: the longest prefix containing it.
    public func sourceRoute(for source: IPAddress) -> SourceRoute? {
        sourceRoutes.filter { $0.prefix.contains(source) }.max { $0.prefix.length < $1.prefix.length }
    }
}
