import CPetrelABI

/// How a VIP hashes and remembers flows. Values are the data plane's PETREL_VIP_* bits.
public struct VipFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// All connections from one client address go to one real.
    public static let hashWithoutSourcePort = VipFlags(rawValue: UInt32(PETREL_VIP_HASH_NO_SRC_PORT))
    /// Skip the connection tables: the ring alone places every packet.
    public static let lruBypass = VipFlags(rawValue: UInt32(PETREL_VIP_LRU_BYPASS))
    /// Hash on the destination port only: one real per port, whatever the client.
    public static let hashDestinationPortOnly = VipFlags(rawValue: UInt32(PETREL_VIP_HASH_DST_PORT_ONLY))
    /// A QUIC service (UDP only): short-header packets go to the real whose server id
    /// their connection ID carries (Petrel CID format v1), so migrating clients stay put.
    public static let quic = VipFlags(rawValue: UInt32(PETREL_VIP_QUIC))

    /// Every flag the data plane knows.
    public static let known = VipFlags(rawValue: UInt32(PETREL_VIP_KNOWN_FLAGS))

    /// Every flag with its config-file name, in a stable order.
    public static let named: [(name: String, flag: VipFlags)] = [
        ("hash_without_source_port", .hashWithoutSourcePort),
        ("lru_bypass", .lruBypass),
        ("hash_destination_port_only", .hashDestinationPortOnly),
        ("quic", .quic),
    ]

    public var names: [String] { VipFlags.named.filter { contains($0.flag) }.map(\.name) }
}

/// A virtual IP service: the address, port and protocol clients connect to.
/// Port 0 means every port of the address.
public struct VipKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16
    public var proto: L4Protocol

    public init(address: IPAddress, port: UInt16, proto: L4Protocol) {
        self.address = address
        self.port = port
        self.proto = proto
    }

    public var description: String {
        let host = address.family == .ipv6 ? "[\(address)]" : "\(address)"
        return "\(proto.rawValue)/\(host):\(port == 0 ? "*" : String(port))"
    }

    public static func < (lhs: VipKey, rhs: VipKey) -> Bool {
        (lhs.address, lhs.port, lhs.proto.number) < (rhs.address, rhs.port, rhs.proto.number)
    }
}

/// How packets reach a real.
public enum Encapsulation: String, Hashable, Sendable, CaseIterable {
    /// IP-in-IP: protocol 4 (IPv4 inside) or 41 (IPv6 inside).
    case ipip
    /// GUE variant 1: outer IP, UDP to the GUE port, then the client's packet. For
    /// networks that filter protocols 4/41, or reals whose NICs spread only UDP.
    case gue
}

/// A backend server behind a VIP, with its share of new connections.
/// Weight 0 drains it: no new flows, established flows stay.
public struct Real: Hashable, Sendable {
    public var address: IPAddress
    public var weight: UInt32
    /// How packets reach this real. A property of the host (its network and NIC),
    /// so every VIP that lists the address must say the same.
    public var encapsulation: Encapsulation
    /// On a `quic` VIP: the server id this real's QUIC server puts in its
    /// connection IDs (1...65535, unique within the VIP).
    public var quicServerId: UInt16?

    public init(address: IPAddress, weight: UInt32 = 1, encapsulation: Encapsulation = .ipip, quicServerId: UInt16? = nil) {
        self.address = address
        self.weight = weight
        self.encapsulation = encapsulation
        self.quicServerId = quicServerId
    }
}

/// A VIP with its flags, reals and source routes: the unit the control plane applies.
public struct Vip: Hashable, Sendable {
    public var key: VipKey
    public var flags: VipFlags
    public var reals: [Real]
    /// Client prefixes pinned to one of `reals` each; the longest matching prefix wins.
    public var sourceRoutes: [SourceRoute]

    public init(key: VipKey, flags: VipFlags = [], reals: [Real] = [], sourceRoutes: [SourceRoute] = []) {
        self.key = key
        self.flags = flags
        self.reals = reals
        self.sourceRoutes = sourceRoutes
    }
}
