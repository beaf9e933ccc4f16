import CPetrelABI
import Foundation
import Petrel
import PetrelTestSupport
import Testing

/// The ICMP the balancer answers itself (bpf/lib/icmp.h): echo replies for VIP
/// addresses and "too big" answers, run in the kernel and checked byte by byte,
/// every checksum recomputed here from the RFCs.
@Suite("ICMP answers, packet by packet")
struct ICMPAnswerPacketTests {
    let balancer: LoadBalancer
    static let client4 = ip("198.18.1.2")
    static let client6 = ip("fd50:0:1::2")
    static let settings = ForwardingSettings(interfaceMAC: interfaceMAC, nextHopMAC: nextHopMAC, mtu: 1500)

    init() throws { balancer = try makeBalancer() }

    // MARK: Echo

    @Test("IPv4 echo to a VIP address: reply from the VIP, id, sequence and payload kept, both checksums right")
    func echoIPv4() throws {
        let payload = Array("petrel echo payload, 32 bytes..".utf8)
        let request = PacketBuilder.echoRequest(from: Self.client4, to: TestVips.web4.address, id: 0x1234, sequence: 7, payload: payload)
        let (action, reply) = try balancer.run(request)
        #expect(action == .tx)
        #expect(reply.count == request.count)
        #expect(Array(reply[0..<6]) == PacketBuilder.clientMAC && Array(reply[6..<12]) == PacketBuilder.balancerMAC, "MACs swapped")
        #expect(be16(reply, 12) == PacketBuilder.etherTypeIPv4)
        let ip = Array(reply[14..<34])
        #expect(ip[0] == 0x45 && Int(be16(ip, 2)) == 20 + 8 + payload.count)
        #expect(ip[8] == 64 && ip[9] == 1, "TTL 64, protocol ICMP")
        #expect(IPAddress(wireBytes: ip[12..<16]) == TestVips.web4.address && IPAddress(wireBytes: ip[16..<20]) == Self.client4)
        #expect(PacketBuilder.internetChecksum(ip) == 0, "IPv4 header checksum")
        let icmp = Array(reply[34...])
        #expect(icmp[0] == 0 && icmp[1] == 0, "echo reply")
        #expect(be16(icmp, 4) == 0x1234 && be16(icmp, 6) == 7)
        #expect(Array(icmp[8...]) == payload)
        #expect(PacketBuilder.internetChecksum(icmp) == 0, "ICMP checksum")
        #expect(try balancer.stats()[.replyEcho] == 1)
        #expect(try balancer.explainEcho(to: TestVips.web4.address).outcome == .answered)
    }

    @Test("IPv6 echo to a VIP address: reply from the VIP, hop limit 64, ICMPv6 checksum over the pseudo-header")
    func echoIPv6() throws {
        let payload = [UInt8](0..<57)  // odd length: the checksum's padding byte counts
        let request = PacketBuilder.echoRequest(from: Self.client6, to: TestVips.web6.address, id: 0xbeef, sequence: 65535, payload: payload)
        let (action, reply) = try balancer.run(request)
        #expect(action == .tx)
        #expect(reply.count == request.count)
        #expect(Array(reply[0..<6]) == PacketBuilder.clientMAC && Array(reply[6..<12]) == PacketBuilder.balancerMAC)
        let ip = Array(reply[14..<54])
        #expect(Array(ip[0..<7]) == Array(request[14..<21]), "version, class, label, length, next header kept")
        #expect(ip[7] == 64, "hop limit")
        #expect(IPAddress(wireBytes: ip[8..<24]) == TestVips.web6.address && IPAddress(wireBytes: ip[24..<40]) == Self.client6)
        let icmp = Array(reply[54...])
        #expect(icmp[0] == 129 && icmp[1] == 0, "echo reply")
        #expect(be16(icmp, 4) == 0xbeef && be16(icmp, 6) == 65535 && Array(icmp[8...]) == payload)
        #expect(PacketBuilder.icmpv6Checksum(source: TestVips.web6.address, destination: Self.client6, message: icmp) == 0)
        #expect(try balancer.stats()[.replyEcho] == 1)
    }

    @Test("On a VLAN the reply keeps the tag; a port-wildcard VIP's address is answered too")
    func echoVLANAndWildcard() throws {
        let request = PacketBuilder.echoRequest(from: Self.client4, to: TestVips.any4in6.address, id: 1, sequence: 1, payload: [1, 2, 3], vlan: 42)
        let (action, reply) = try balancer.run(request)
        #expect(action == .tx)
        #expect(Array(reply[12..<18]) == Array(request[12..<18]), "VLAN tag and ethertype kept")
        #expect(reply[38] == 0 && PacketBuilder.internetChecksum(Array(reply[38...])) == 0)
        #expect(PacketBuilder.internetChecksum(Array(reply[18..<38])) == 0)
    }

    @Test("An address the filter calls 'maybe' but no VIP has is never answered")
    func echoFilterFalsePositive() throws {
        // An address in the same filter slot as the VIP 198.18.100.1: the filter says "maybe".
        let vipSlot = Self.slot(of: [198, 18, 100, 1])
        var candidate: [UInt8]?
        for n in 0..<(1 << 24) where candidate == nil {
            let bytes: [UInt8] = [10, UInt8(n >> 16), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)]
            if Self.slot(of: bytes) == vipSlot { candidate = bytes }
        }
        let neighbour = try #require(candidate.flatMap { IPAddress(wireBytes: $0) })
        let request = PacketBuilder.echoRequest(from: Self.client4, to: neighbour, id: 9, sequence: 9, payload: [9])
        let (action, output) = try balancer.run(request)
        #expect(action == .pass)
        #expect(output == request)
        #expect(try balancer.stats()[.passICMP] == 1)
        #expect(try balancer.stats()[.replyEcho] == 0)
        #expect(try balancer.explainEcho(to: neighbour).outcome == .passedNoVip)
        // Once the last VIP of an address is gone, its echo requests go to the kernel again.
        try balancer.apply(TestVips.all.filter { $0.key.address != TestVips.web6.address })
        let gone = PacketBuilder.echoRequest(from: Self.client6, to: TestVips.web6.address, id: 1, sequence: 1, payload: [])
        #expect(try balancer.run(gone).action == .pass)
        #expect(try balancer.dataPlaneSnapshot().vipAddresses == Set(TestVips.all.map(\.key.address)).subtracting([TestVips.web6.address]))
    }

    @Test("Echo replies off: requests go to the kernel untouched; code != 0 and IPv4 options always do")
    func echoPassed() throws {
        let request = PacketBuilder.echoRequest(from: Self.client4, to: TestVips.web4.address, id: 5, sequence: 5, payload: [5])
        var withCode = request
        withCode[14 + 20 + 1] = 3
        let options = PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeIPv4, payload: PacketBuilder.ipv4(
            source: Self.client4, destination: TestVips.web4.address, protocol: 1, payload: Array(request[34...]), options: [1, 1, 1, 0]))
        for frame in [withCode, options] {
            let (action, output) = try balancer.run(frame)
            #expect(action == .pass && output == frame)
        }
        var off = Self.settings
        off.icmpEchoReply = false
        try balancer.configureForwarding(off)
        #expect(try balancer.forwardingSettings()?.icmpEchoReply == false)
        for frame in [request, PacketBuilder.echoRequest(from: Self.client6, to: TestVips.web6.address, id: 1, sequence: 1, payload: [])] {
            let (action, output) = try balancer.run(frame)
            #expect(action == .pass && output == frame)
        }
        #expect(try balancer.explainEcho(to: TestVips.web4.address).outcome == .passedEchoOff)
        let stats = try balancer.stats()
        #expect(stats[.passICMP] == 4 && stats[.replyEcho] == 0)
    }

    @Test("The rate limit: above icmp_rate_limit answers a second per CPU, requests go to the kernel and are counted")
    func rateLimit() throws {
        var limited = Self.settings
        limited.icmpRateLimit = 5
        try balancer.configureForwarding(limited)
        let request = PacketBuilder.echoRequest(from: Self.client4, to: TestVips.web4.address, id: 5, sequence: 5, payload: [5])
        let actions = try (0..<8).map { _ in try balancer.run(request).action }
        // The test runs well inside one second (the window may roll over once on a slow machine).
        #expect(actions.filter { $0 == .tx }.count >= 5)
        let stats = try balancer.stats()
        #expect(stats[.replyEcho] + stats[.passICMP] == 8)
        #expect(stats[.eventICMPRateLimited] == stats[.passICMP])
        #expect(stats[.eventICMPRateLimited] > 0)
    }

    // MARK: Too big

    /// A TCP packet of `length` IP bytes to the VIP; DF set unless `dontFragment` is false.
    static func bigFrame(_ flow: Flow, length: Int, dontFragment: Bool = true, vlan: UInt16? = nil) -> [UInt8] {
        let headers = (flow.source.family == .ipv4 ? 20 : 40) + 20
        let tcp = PacketBuilder.tcp(sourcePort: flow.sourcePort, destinationPort: flow.destinationPort, flags: PacketBuilder.TCPFlags.ack,
                                    payload: (0..<(length - headers)).map { UInt8(truncatingIfNeeded: $0 * 7) })
        if flow.source.family == .ipv4 {
            return PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeIPv4, payload: PacketBuilder.ipv4(
                source: flow.source, destination: flow.destination, protocol: 6, payload: tcp, fragment: dontFragment ? 0x4000 : 0), vlan: vlan)
        }
        return PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeIPv6, payload: PacketBuilder.ipv6(
            source: flow.source, destination: flow.destination, nextHeader: 6, payload: tcp), vlan: vlan)
    }

    @Test("IPv4 with DF, one byte over: ICMP 3/4 from the VIP, MTU 1480, quoting 548 bytes; 1480 itself is forwarded")
    func tooBigIPv4() throws {
        let flow = Flow(proto: .tcp, source: Self.client4, sourcePort: 40000, destination: TestVips.web4.address, destinationPort: 80)
        #expect(try balancer.run(Self.bigFrame(flow, length: 1480)).action == .tx)
        let frame = Self.bigFrame(flow, length: 1481)
        let (action, answer) = try balancer.run(frame)
        #expect(action == .tx)
        #expect(answer.count == 14 + 576)
        #expect(Array(answer[0..<6]) == PacketBuilder.clientMAC && Array(answer[6..<12]) == PacketBuilder.balancerMAC)
        #expect(be16(answer, 12) == PacketBuilder.etherTypeIPv4)
        let ip = Array(answer[14..<34])
        #expect(ip[0] == 0x45 && be16(ip, 2) == 576 && ip[8] == 64 && ip[9] == 1)
        #expect(IPAddress(wireBytes: ip[12..<16]) == TestVips.web4.address && IPAddress(wireBytes: ip[16..<20]) == Self.client4)
        #expect(PacketBuilder.internetChecksum(ip) == 0)
        let icmp = Array(answer[34...])
        #expect(icmp[0] == 3 && icmp[1] == 4, "destination unreachable, fragmentation needed")
        #expect(be16(icmp, 4) == 0, "unused")
        #expect(be16(icmp, 6) == 1480, "next-hop MTU: 1500 less the outer IPv4 header")
        #expect(Array(icmp[8...]) == Array(l3(of: frame).prefix(548)), "the offending packet's first 548 bytes")
        #expect(PacketBuilder.internetChecksum(icmp) == 0, "ICMP checksum over header and quote")
        let stats = try balancer.stats()
        #expect(stats[.replyTooBig] == 1 && stats[.dropTooBig] == 0 && stats[.forward] == 1)

        let explanation = try balancer.explain(flow, packetLength: 1481)
        #expect(explanation.largestPacket == 1480)
        #expect(explanation.tooBig == .answered(mtu: 1480))
        #expect(try balancer.explain(flow, packetLength: 1480).tooBig == nil)
    }

    @Test("IPv4 without DF: dropped and counted (XDP cannot fragment); not to a source that is not one host")
    func tooBigDropped() throws {
        let flow = Flow(proto: .tcp, source: Self.client4, sourcePort: 40000, destination: TestVips.web4.address, destinationPort: 80)
        #expect(try balancer.run(Self.bigFrame(flow, length: 1481, dontFragment: false)).action == .drop)
        #expect(try balancer.explain(flow, packetLength: 1481, dontFragment: false).tooBig == .dropped("IPv4 without Don't Fragment: XDP cannot fragment"))
        for source in ["127.0.0.1", "224.0.0.9", "0.1.2.3", "255.255.255.255"] {
            let odd = Flow(proto: .tcp, source: ip(source), sourcePort: 40000, destination: TestVips.web4.address, destinationPort: 80)
            #expect(try balancer.run(Self.bigFrame(odd, length: 1481)).action == .drop, "from \(source)")
        }
        for source in ["ff02::1", "::", "::1"] {
            let odd = Flow(proto: .tcp, source: ip(source), sourcePort: 40000, destination: TestVips.web6.address, destinationPort: 80)
            #expect(try balancer.run(Self.bigFrame(odd, length: 1461)).action == .drop, "from \(source)")
        }
        var off = Self.settings
        off.icmpTooBig = false
        try balancer.configureForwarding(off)
        #expect(try balancer.run(Self.bigFrame(flow, length: 1481)).action == .drop)
        #expect(try balancer.explain(flow, packetLength: 1481).tooBig == .dropped("too-big answers are off (icmp.too_big: false)"))
        let stats = try balancer.stats()
        #expect(stats[.dropTooBig] == 9 && stats[.replyTooBig] == 0)
    }

    @Test("IPv6: ICMPv6 packet too big, MTU 1460, 1280 bytes with as much quote as fits, checksum over the pseudo-header")
    func tooBigIPv6() throws {
        let flow = Flow(proto: .tcp, source: Self.client6, sourcePort: 40001, destination: TestVips.web6.address, destinationPort: 80)
        #expect(try balancer.run(Self.bigFrame(flow, length: 1460)).action == .tx)
        let frame = Self.bigFrame(flow, length: 1461)
        let (action, answer) = try balancer.run(frame)
        #expect(action == .tx)
        #expect(answer.count == 14 + 1280)
        #expect(Array(answer[0..<6]) == PacketBuilder.clientMAC && Array(answer[6..<12]) == PacketBuilder.balancerMAC)
        #expect(be16(answer, 12) == PacketBuilder.etherTypeIPv6)
        let ip = Array(answer[14..<54])
        #expect(Array(ip[0..<4]) == [0x60, 0, 0, 0])
        #expect(be16(ip, 4) == 1240 && ip[6] == 58 && ip[7] == 64)
        #expect(IPAddress(wireBytes: ip[8..<24]) == TestVips.web6.address && IPAddress(wireBytes: ip[24..<40]) == Self.client6)
        let icmp = Array(answer[54...])
        #expect(icmp[0] == 2 && icmp[1] == 0, "packet too big")
        #expect(UInt32(be16(icmp, 4)) << 16 | UInt32(be16(icmp, 6)) == 1460, "MTU: 1500 less the outer IPv6 header")
        #expect(Array(icmp[8...]) == Array(l3(of: frame).prefix(1232)))
        #expect(PacketBuilder.icmpv6Checksum(source: TestVips.web6.address, destination: Self.client6, message: icmp) == 0)
        #expect(try balancer.stats()[.replyTooBig] == 1)
    }

    @Test("Per real: GUE's 8 bytes and an IPv6 outer header lower the MTU; IPv6 is never told less than 1280; VLAN kept")
    func tooBigPerReal() throws {
        let gue4 = VipKey(address: ip("198.18.100.7"), port: 80, proto: .tcp)
        let gue6 = VipKey(address: ip("fd50:0:100::7"), port: 80, proto: .tcp)
        let vips = [Vip(key: gue4, reals: [Real(address: ip("fd50:0:3::21"), encapsulation: .gue)]),
                    Vip(key: gue6, reals: [Real(address: ip("fd50:0:3::22"), encapsulation: .gue)])]
        let balancer = try makeBalancer(vips: vips, mtu: 1500)
        // IPv4 client, IPv6 GUE real: 1500 - 40 - 8.
        let flow4 = Flow(proto: .tcp, source: Self.client4, sourcePort: 1, destination: gue4.address, destinationPort: 80)
        let (action4, answer4) = try balancer.run(Self.bigFrame(flow4, length: 1453, vlan: 12))
        #expect(action4 == .tx)
        #expect(answer4.count == 18 + 576 && be16(answer4, 12) == PacketBuilder.etherTypeVLAN && be16(answer4, 14) == 12)
        #expect(be16(answer4, 16) == PacketBuilder.etherTypeIPv4 && be16(answer4, 18 + 26) == 1452)
        #expect(PacketBuilder.internetChecksum(Array(answer4[38...])) == 0)
        #expect(try balancer.explain(flow4).largestPacket == 1452)

        // MTU 1300 less 48 is 1252: the client is told 1280, IPv6's minimum.
        try balancer.configureForwarding(ForwardingSettings(interfaceMAC: interfaceMAC, nextHopMAC: nextHopMAC, mtu: 1300))
        let flow6 = Flow(proto: .tcp, source: Self.client6, sourcePort: 1, destination: gue6.address, destinationPort: 80)
        let (action6, answer6) = try balancer.run(Self.bigFrame(flow6, length: 1253))
        #expect(action6 == .tx)
        #expect(answer6.count == 14 + 1280 && answer6[54] == 2)
        #expect(be16(answer6, 54 + 6) == 1280)
        #expect(PacketBuilder.icmpv6Checksum(source: gue6.address, destination: Self.client6, message: Array(answer6[54...])) == 0)
        #expect(try balancer.explain(flow6, packetLength: 1253).tooBig == .answered(mtu: 1280))
    }

    /// The VIP address filter's slot of an IPv4 address (petrel_abi.h), for finding a false positive.
    static func slot(of bytes: [UInt8]) -> UInt32 {
        let word = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24  // as stored in memory
        return petrel_addr_filter_slot(word, 0, 0, 0)
    }
}
