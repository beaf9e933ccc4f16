import Foundation

/// An IPv4 or IPv6 address, kept as the bytes on the wire (network order).
public enum IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    case v4([UInt8])  // 4 bytes
    case v6([UInt8])  // 16 bytes

    /// Parses dotted-quad IPv4 or any textual IPv6 form; nil if it is neither.
    public init?(_ text: String) {
        var v4 = in_addr()
        var v6 = in6_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self = .v4(withUnsafeBytes(of: &v4) { Array($0) })
        } else if inet_pton(AF_INET6, text, &v6) == 1 {
            self = .v6(withUnsafeBytes(of: &v6) { Array($0) })
        } else {
            return nil
        }
    }

    public var family: AddressFamily { if case .v4 = self { return .ipv4 } else { return .ipv6 } }

    public var bytes: [UInt8] {
        switch self {
        case .v4(let bytes), .v6(let bytes): return bytes
        }
    }

    /// The address as four 32-bit words (an IPv4 address fills word 0), the way
    /// the ABI header stores addresses.
    public var words: (UInt32, UInt32, UInt32, UInt32) {
        var padded = bytes + [UInt8](repeating: 0, count: 16 - bytes.count)
        return padded.withUnsafeMutableBytes { raw in
            (raw.load(fromByteOffset: 0, as: UInt32.self), raw.load(fromByteOffset: 4, as: UInt32.self),
             raw.load(fromByteOffset: 8, as: UInt32.self), raw.load(fromByteOffset: 12, as: UInt32.self))
        }
    }

    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let bytes = self.bytes
        let family = self.family == .ipv4 ? AF_INET : AF_INET6
        _ = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        return String(cString: buffer)
    }

    // Hashing the bytes in one call is much cheaper than element by element,
    // and large configurations hash millions of addresses.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(family == .ipv4)
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    /// Canonical order: IPv4 before IPv6, then by bytes. Maglev sorts reals this
    /// way so every instance builds the same ring.
    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        if lhs.family != rhs.family { return lhs.family == .ipv4 }
        return lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
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
