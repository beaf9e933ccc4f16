import Petrel

/// Builds Ethernet frames for test runs, benchmarks and the fuzzer: the packets a
/// client would send towards a VIP. Checksums of L4 headers are left zero: the
/// data plane never reads them.
public enum PacketBuilder {
    public static let etherTypeIPv4: UInt16 = 0x0800
    public static let etherTypeIPv6: UInt16 = 0x86dd
    public static let etherTypeVLAN: UInt16 = 0x8100

    public enum TCPFlags {
        public static let fin: UInt8 = 0x01
        public static let syn: UInt8 = 0x02
        public static let rst: UInt8 = 0x04
        public static let psh: UInt8 = 0x08
        public static let ack: UInt8 = 0x10
    }

    public static let clientMAC: [UInt8] = [0x02, 0, 0, 0, 0x01, 0x02]
    public static let balancerMAC: [UInt8] = [0x02, 0, 0, 0, 0x02, 0x02]

    /// A complete frame for one packet of `flow`. TCP packets are a SYN when
    /// `tcpFlags` is left at its default.
    public static func frame(for flow: Flow, tcpFlags: UInt8 = TCPFlags.syn, payload: [UInt8] = [], vlan: UInt16? = nil) -> [UInt8] {
        let l4: [UInt8]
        switch flow.proto {
        case .tcp: l4 = tcp(sourcePort: flow.sourcePort, destinationPort: flow.destinationPort, flags: tcpFlags, payload: payload)
        case .udp: l4 = udp(sourcePort: flow.sourcePort, destinationPort: flow.destinationPort, payload: payload)
        }
        let l3: [UInt8]
        if flow.source.family == .ipv4 {
            l3 = ipv4(source: flow.source, destination: flow.destination, protocol: flow.proto.number, payload: l4)
        } else {
            l3 = ipv6(source: flow.source, destination: flow.destination, nextHeader: flow.proto.number, payload: l4)
        }
        return ethernet(etherType: flow.source.family == .ipv4 ? etherTypeIPv4 : etherTypeIPv6, payload: l3, vlan: vlan)
    }

    public static func ethernet(destination: [UInt8] = balancerMAC, source: [UInt8] = clientMAC, etherType: UInt16, payload: [UInt8], vlan: UInt16? = nil) -> [UInt8] {
        var frame = destination + source
        if let vlan { frame += be16(etherTypeVLAN) + be16(vlan) }
        return frame + be16(etherType) + payload
    }

    /// An IPv4 packet with a correct header checksum. `fragment` holds the flags
    /// and offset field (default: Don't Fragment).
    public static func ipv4(source: IPAddress, destination: IPAddress, protocol proto: UInt8, payload: [UInt8],
                            ttl: UInt8 = 64, tos: UInt8 = 0, options: [UInt8] = [], fragment: UInt16 = 0x4000) -> [UInt8] {
        precondition(options.count % 4 == 0, "IPv4 options come in 4-byte words")
        let headerLength = 20 + options.count
        var header: [UInt8] = [UInt8(0x40 | headerLength / 4), tos]
        header += be16(UInt16(headerLength + payload.count)) + be16(0x1234) + be16(fragment)
        header += [ttl, proto, 0, 0] + source.bytes + destination.bytes + options
        let checksum = internetChecksum(header)
        header[10] = UInt8(checksum >> 8)
        header[11] = UInt8(checksum & 0xff)
        return header + payload
    }

    public static func ipv6(source: IPAddress, destination: IPAddress, nextHeader: UInt8, payload: [UInt8],
                            hopLimit: UInt8 = 64, trafficClass: UInt8 = 0, flowLabel: UInt32 = 0) -> [UInt8] {
        let first = UInt32(6) << 28 | UInt32(trafficClass) << 20 | (flowLabel & 0xfffff)
        return be32(first) + be16(UInt16(payload.count)) + [nextHeader, hopLimit] + source.bytes + destination.bytes + payload
    }

    public static func tcp(sourcePort: UInt16, destinationPort: UInt16, flags: UInt8, payload: [UInt8] = []) -> [UInt8] {
        be16(sourcePort) + be16(destinationPort) + be32(1) + be32(flags & TCPFlags.ack != 0 ? 1 : 0)
            + [0x50, flags] + be16(65535) + [0, 0, 0, 0] + payload
    }

    public static func udp(sourcePort: UInt16, destinationPort: UInt16, payload: [UInt8] = []) -> [UInt8] {
        be16(sourcePort) + be16(destinationPort) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
    }

    /// An ICMP (IPv4) or ICMPv6 error quoting `quoted` (an IP packet).
    public static func icmpError(type: UInt8, code: UInt8, quoting quoted: [UInt8]) -> [UInt8] {
        [type, code, 0, 0, 0, 0, 0x05, 0xdc] + quoted
    }

    /// An echo request frame (ICMP type 8 or ICMPv6 type 128, by the addresses'
    /// family) with correct checksums.
    public static func echoRequest(from source: IPAddress, to destination: IPAddress, id: UInt16, sequence: UInt16,
                                   payload: [UInt8], vlan: UInt16? = nil) -> [UInt8] {
        if source.family == .ipv4 {
            var icmp = [8, 0, 0, 0] + be16(id) + be16(sequence) + payload
            let checksum = internetChecksum(icmp)
            icmp[2] = UInt8(checksum >> 8)
            icmp[3] = UInt8(checksum & 0xff)
            return ethernet(etherType: etherTypeIPv4, payload: ipv4(source: source, destination: destination, protocol: 1, payload: icmp), vlan: vlan)
        }
        var icmp = [128, 0, 0, 0] + be16(id) + be16(sequence) + payload
        let checksum = icmpv6Checksum(source: source, destination: destination, message: icmp)
        icmp[2] = UInt8(checksum >> 8)
        icmp[3] = UInt8(checksum & 0xff)
        return ethernet(etherType: etherTypeIPv6, payload: ipv6(source: source, destination: destination, nextHeader: 58, payload: icmp), vlan: vlan)
    }

    /// The ICMPv6 checksum of `message` (its checksum field included as it is):
    /// RFC 4443 2.3, over the pseudo-header (addresses, length, next header 58) and the message.
    /// 0 when run over a message whose checksum is correct.
    public static func icmpv6Checksum(source: IPAddress, destination: IPAddress, message: [UInt8]) -> UInt16 {
        internetChecksum(source.bytes + destination.bytes + be32(UInt32(message.count)) + [0, 0, 0, 58] + message)
    }

    /// The RFC 1071 checksum; 0 when run over a header that includes a correct checksum.
    public static func internetChecksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }

    static func be16(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xff)] }
    static func be32(_ value: UInt32) -> [UInt8] { [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }
}
