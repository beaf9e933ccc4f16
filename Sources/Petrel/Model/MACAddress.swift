import PetrelBPF

/// An Ethernet address: a fixed-size value (48 bits in a number), written
/// `02:00:00:00:02:01`.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    /// The six bytes as a number, first byte highest.
    public let value: UInt64

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, _ e: UInt8, _ f: UInt8) {
        value = [a, b, c, d, e, f].reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// The address in the bytes of a frame or of a kernel answer; nil unless there are 6.
    public init?<Bytes: Collection>(bytes: Bytes) where Bytes.Element == UInt8 {
        guard bytes.count == 6 else { return nil }
        value = bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// Parses six two-digit hex bytes separated by colons.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let bytes = parts.compactMap { $0.count == 2 ? UInt8($0, radix: 16) : nil }
        guard parts.count == 6, bytes.count == 6 else { return nil }
        self.init(bytes: bytes)
    }

    /// The six bytes, first on the wire first.
    public var bytes: [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: value >> (40 - 8 * $0)) } }

    /// The group bit: multicast, and broadcast (all ones).
    public var isMulticast: Bool { value >> 40 & 1 == 1 }
    public var isZero: Bool { value == 0 }

    /// `02:00:00:00:02:01`.
    public var description: String {
        bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined(separator: ":")
    }
}

extension NetworkInterface {
    /// The interface's MAC address.
    public func mac() throws(PetrelError) -> MACAddress {
        let bytes = try kernel { try macAddress() }
        guard let mac = MACAddress(bytes: bytes) else {
            throw .invalid(field: "interface \(name)", value: "a \(bytes.count)-byte hardware address", expected: "must be an Ethernet interface")
        }
        return mac
    }
}
