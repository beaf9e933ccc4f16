import CPetrelABI

// Conversions between the Swift model and the C layouts of bpf/include/petrel_abi.h.
// Addresses are stored in the C structs exactly as on the wire.

typealias AddressWords = (UInt32, UInt32, UInt32, UInt32)

extension IPAddress {
    /// The wire bytes as the ABI's `__be32 addr_be[4]`: `words`, each in network order.
    var abiWords: AddressWords {
        let w = words
        return (w.0.bigEndian, w.1.bigEndian, w.2.bigEndian, w.3.bigEndian)
    }

    var abiFamily: UInt8 { family == .ipv4 ? UInt8(PETREL_FAMILY_IPV4) : UInt8(PETREL_FAMILY_IPV6) }

    init?(abiWords: AddressWords, family: UInt8) {
        let w = (UInt32(bigEndian: abiWords.0), UInt32(bigEndian: abiWords.1), UInt32(bigEndian: abiWords.2), UInt32(bigEndian: abiWords.3))
        switch Int32(family) {
        case PETREL_FAMILY_IPV4: self = .v4(w.0)
        case PETREL_FAMILY_IPV6: self = .v6(high: UInt64(w.0) << 32 | UInt64(w.1), low: UInt64(w.2) << 32 | UInt64(w.3))
        default: return nil
        }
    }
}
extension VipKey {
    var abi: petrel_vip_key {
        var key = petrel_vip_key()
        key.addr_be = address.abiWords
        key.port_be = port.bigEndian
        key.protocol = proto.number
        key.family = address.abiFamily
        return key
    }

    /// The key in vips_v4 (IPv4 VIPs only).
    var abiV4: petrel_vip_key_v4 {
        var key = petrel_vip_key_v4()
        key.addr_be = address.abiWords.0
        key.port_be = port.bigEndian
        key.protocol = proto.number
        return key
    }

    init?(abi: petrel_vip_key_v4) {
        self.init(abi: petrel_vip_key(addr_be: (abi.addr_be, 0, 0, 0), port_be: abi.port_be, protocol: abi.protocol,
                                      family: UInt8(PETREL_FAMILY_IPV4)))
    }

    init?(abi: petrel_vip_key) {
        guard let address = IPAddress(abiWords: abi.addr_be, family: abi.family),
              let proto = L4Protocol.allCases.first(where: { $0.number == abi.protocol }) else { return nil }
        self.init(address: address, port: UInt16(bigEndian: abi.port_be), proto: proto)
    }
}

extension Flow {
    var abi: petrel_flow_key {
        var key = petrel_flow_key()
        key.src_be = source.abiWords
        key.dst_be = destination.abiWords
        key.src_port_be = sourcePort.bigEndian
        key.dst_port_be = destinationPort.bigEndian
        key.protocol = proto.number
        key.family = source.abiFamily
        return key
    }

    /// The key in the IPv4 connection tables (IPv4 flows only).
    var abiV4: petrel_flow_key_v4 {
        var key = petrel_flow_key_v4()
        key.src_be = source.abiWords.0
        key.dst_be = destination.abiWords.0
        key.src_port_be = sourcePort.bigEndian
        key.dst_port_be = destinationPort.bigEndian
        key.protocol = proto.number
        return key
    }
}

extension MACAddress {
    typealias ABIBytes = (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)

    /// The ABI's `__u8 mac[6]`.
    var abiBytes: ABIBytes {
        let b = bytes
        return (b[0], b[1], b[2], b[3], b[4], b[5])
    }

    init(abiBytes t: ABIBytes) {
        self.init(t.0, t.1, t.2, t.3, t.4, t.5)
    }
}

extension Encapsulation {
    /// petrel_real.flags for a real reached this way.
    var realFlags: UInt8 { self == .gue ? UInt8(PETREL_REAL_GUE) : 0 }

    init(realFlags: UInt8) { self = realFlags & UInt8(PETREL_REAL_GUE) != 0 ? .gue : .ipip }
}

extension VipFlags {
    /// PETREL_VIP_SOURCE_ROUTES: written by the planner for a VIP with source routes,
    /// never an operator's flag (not in `known`, not in `named`).
    static let sourceRoutes = VipFlags(rawValue: UInt32(PETREL_VIP_SOURCE_ROUTES))
}

extension IPPrefix {
    /// The prefix as a key of the source_routes trie, for the VIP with this stats index.
    func abiSourceRouteKey(vipIndex: UInt32) -> petrel_source_route_key {
        var key = petrel_source_route_key()
        key.prefixlen = UInt32(PETREL_SOURCE_ROUTE_VIP_BITS) + UInt32(length)
        key.vip_index = vipIndex
        key.src_be = address.abiWords
        return key
    }

    /// A trie key read back: the VIP's stats index and the prefix. An IPv4 prefix
    /// is told apart by `family` (the VIP's), as the key itself cannot say.
    init?(abiSourceRouteKey key: petrel_source_route_key, family: AddressFamily) {
        let length = Int(key.prefixlen) - Int(PETREL_SOURCE_ROUTE_VIP_BITS)
        guard length >= 0,
              let address = IPAddress(abiWords: key.src_be, family: family == .ipv4 ? UInt8(PETREL_FAMILY_IPV4) : UInt8(PETREL_FAMILY_IPV6))
        else { return nil }
        self.init(address: address, length: length)
    }
}

extension Flow {
    init?(abi: petrel_flow_key) {
        guard let source = IPAddress(abiWords: abi.src_be, family: abi.family),
              let destination = IPAddress(abiWords: abi.dst_be, family: abi.family),
              let proto = L4Protocol.allCases.first(where: { $0.number == abi.protocol }) else { return nil }
        self.init(proto: proto, source: source, sourcePort: UInt16(bigEndian: abi.src_port_be),
                  destination: destination, destinationPort: UInt16(bigEndian: abi.dst_port_be))
    }
}
