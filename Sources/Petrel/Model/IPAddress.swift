import Foundation

/// An IPv4 or IPv6 address: a fixed-size value (two 64-bit numbers and a family),
/// so it never needs a length check. An IPv4 address sits in the top 32 bits,
/// the way the data plane's `addr_be[4]` holds it in word 0.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let family: AddressFamily
    /// The first 8 bytes on the wire, read as a number (network order).
    public let high: UInt64
    /// The last 8 bytes on the wire (zero for IPv4).
    public let low: UInt64

    private init(family: AddressFamily, high: UInt64, low: UInt64) {
        self.family = family
        self.high = high
        self.low = low
    }

    // MARK: Making one

    /// The IPv4 address `a.b.c.d`.
    public static func v4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> IPAddress {
        v4(UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d))
    }

    /// The IPv4 address whose number is `value` (198.18.0.1 is 0xc612_0001).
    public static func v4(_ value: UInt32) -> IPAddress {
        IPAddress(family: .ipv4, high: UInt64(value) << 32, low: 0)
    }

    /// The IPv6 address whose first and last 64 bits are `high` and `low`.
    public static func v6(high: UInt64, low: UInt64) -> IPAddress {
        IPAddress(family: .ipv6, high: high, low: low)
    }

    /// Parses dotted-quad IPv4 or any textual IPv6 form; nil if it is neither.
    public init?(_ text: String) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self = IPAddress.v4(UInt32(bigEndian: v4.s_addr))
        } else if inet_pton(AF_INET6, text, &v6) == 1 {
            let halves = withUnsafeBytes(of: &v6) { ($0.loadUnaligned(as: UInt64.self), $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self)) }
            self = IPAddress.v6(high: UInt64(bigEndian: halves.0), low: UInt64(bigEndian: halves.1))
        } else {
            return nil
        }
    }

    /// The address in the bytes of a packet header: 4 bytes for IPv4, 16 for IPv6; nil for any other count.
    public init?<Bytes: Collection>(wireBytes bytes: Bytes) where Bytes.Element == UInt8 {
        func number(_ part: some Sequence<UInt8>) -> UInt64 { part.reduce(0) { $0 << 8 | UInt64($1) } }
        switch bytes.count {
        case 4: self = IPAddress.v4(UInt32(number(bytes)))
        case 16: self = IPAddress.v6(high: number(bytes.prefix(8)), low: number(bytes.dropFirst(8)))
        default: return nil
        }
    }

    // MARK: Reading it

    /// The address as four 32-bit numbers, in wire order (IPv4 fills word 0): the
    /// one form the flow hash, Maglev and the maps are fed from.
    public var words: (UInt32, UInt32, UInt32, UInt32) {
        (UInt32(truncatingIfNeeded: high >> 32), UInt32(truncatingIfNeeded: high),
         UInt32(truncatingIfNeeded: low >> 32), UInt32(truncatingIfNeeded: low))
    }

    /// The IPv4 address as a number (`family == .ipv4` only).
    public var ipv4Value: UInt32 { UInt32(truncatingIfNeeded: high >> 32) }

    /// The bytes on the wire: 4 for IPv4, 16 for IPv6 (for building packets).
    public var bytes: [UInt8] {
        let all = (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * $0)) }
            + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * $0)) }
        return family == .ipv4 ? Array(all.prefix(4)) : all
    }

    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let bytes = self.bytes
        let family = self.family == .ipv4 ? AF_INET : AF_INET6
        _ = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        return String(cString: buffer)
    }

    /// Canonical order: IPv4 before IPv6, then by bytes. Maglev sorts reals this
    /// way so every instance builds the same ring.
    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        if lhs.family != rhs.family { return lhs.family == .ipv4 }
        return (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}

public enum AddressFamily: String, Sendable, Codable {
    case ipv4, ipv6
}

/// The transport protocols a VIP can serve.
public enum L4Protocol: String, Hashable, Sendable, Codable, CaseIterable {
    case tcp, udp

    /// The IP protocol number (6 or 17).
    public var number: UInt8 { self == .tcp ? 6 : 17 }
}
