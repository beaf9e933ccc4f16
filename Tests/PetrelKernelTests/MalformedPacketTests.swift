import Foundation
import Petrel
import Testing
import PetrelTestSupport

/// Malformed and unusual packets are never forwarded half-parsed: each is
/// dropped or passed, and counted under the expected reason.
@Suite("Malformed and unusual packets")
struct MalformedPacketTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let frame: [UInt8]
        let action: XDPAction
        let reason: StatReason
        var testDescription: String { name }
    }

    static let flow = Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: 40000, destination: ip("198.18.100.1"), destinationPort: 80)
    static let flow6 = Flow(proto: .tcp, source: ip("fd50:0:1::2"), sourcePort: 40000, destination: ip("fd50:0:100::1"), destinationPort: 80)
    static let tcp = PacketBuilder.tcp(sourcePort: 40000, destinationPort: 80, flags: PacketBuilder.TCPFlags.syn)

    static func ipv4Frame(_ l3: [UInt8]) -> [UInt8] { PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeIPv4, payload: l3) }
    static func ipv6Frame(_ l3: [UInt8]) -> [UInt8] { PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeIPv6, payload: l3) }
    static func vipIPv4(protocol proto: UInt8 = 6, payload: [UInt8] = tcp, fragment: UInt16 = 0x4000) -> [UInt8] {
        PacketBuilder.ipv4(source: flow.source, destination: flow.destination, protocol: proto, payload: payload, fragment: fragment)
    }

    static var cases: [Case] {
        let good = PacketBuilder.frame(for: flow)
        let good6 = PacketBuilder.frame(for: flow6)
        var badIHL = vipIPv4()
        badIHL[0] = 0x44
        var badVersion = vipIPv4()
        badVersion[0] = 0x65
        var longTotal = vipIPv4()
        longTotal[2] = 0x05  // total length 1280+ bytes, frame is 54
        var shortTotal = vipIPv4()
        shortTotal[2] = 0; shortTotal[3] = 10  // shorter than the header itself
        var tcpBadOffset = vipIPv4()
        tcpBadOffset[20 + 12] = 0x40  // data offset 4 words < 5
        var tcpLongOffset = vipIPv4()
        tcpLongOffset[20 + 12] = 0xf0  // data offset 15 words: past the end of the packet
        var udpLongLength = vipIPv4(protocol: 17, payload: PacketBuilder.udp(sourcePort: 40000, destinationPort: 53))
        udpLongLength[20 + 5] = 200  // UDP length 200, packet has 8
        var longPayload6 = Array(good6[14...])
        longPayload6[4] = 0x10  // payload length lies: 4096+
        var udpCut = vipIPv4(protocol: 17, payload: [0x9c, 0x40, 0, 53])
        udpCut[9] = 17
        let hopByHop = PacketBuilder.ipv6(source: flow6.source, destination: flow6.destination, nextHeader: 0, payload: [6, 0] + [UInt8](repeating: 0, count: 6) + tcp)
        let fragment6 = PacketBuilder.ipv6(source: flow6.source, destination: flow6.destination, nextHeader: 44, payload: [6, 0, 0, 1, 0, 0, 0, 1] + tcp)
        let arp = PacketBuilder.ethernet(etherType: 0x0806, payload: [UInt8](repeating: 0, count: 28))
        let gre = vipIPv4(protocol: 47, payload: [0, 0, 0x08, 0x00])

        return [
            Case(name: "Ethernet header only, IPv4 type", frame: Array(good.prefix(14)), action: .drop, reason: .dropMalformed),
            Case(name: "IPv4 header cut short", frame: Array(good.prefix(14 + 12)), action: .drop, reason: .dropMalformed),
            Case(name: "IPv4 header length below 5 words", frame: ipv4Frame(badIHL), action: .drop, reason: .dropMalformed),
            Case(name: "IPv4 version field not 4", frame: ipv4Frame(badVersion), action: .drop, reason: .dropMalformed),
            Case(name: "IPv4 total length longer than the frame", frame: ipv4Frame(longTotal), action: .drop, reason: .dropMalformed),
            Case(name: "IPv4 total length shorter than its header", frame: ipv4Frame(shortTotal), action: .drop, reason: .dropMalformed),
            Case(name: "TCP header cut short", frame: ipv4Frame(Array(vipIPv4(payload: Array(tcp.prefix(10))))), action: .drop, reason: .dropMalformed),
            Case(name: "TCP data offset below 5 words", frame: ipv4Frame(tcpBadOffset), action: .drop, reason: .dropMalformed),
            Case(name: "UDP header cut short", frame: ipv4Frame(udpCut), action: .drop, reason: .dropMalformed),
            Case(name: "TCP data offset past the end", frame: ipv4Frame(tcpLongOffset), action: .drop, reason: .dropMalformed),
            Case(name: "UDP length longer than the packet", frame: ipv4Frame(udpLongLength), action: .drop, reason: .dropMalformed),
            Case(name: "IPv6 header cut short", frame: Array(good6.prefix(14 + 30)), action: .drop, reason: .dropMalformed),
            Case(name: "IPv6 payload length longer than the frame", frame: ipv6Frame(longPayload6), action: .drop, reason: .dropMalformed),
            Case(name: "VLAN tag cut short", frame: PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeVLAN, payload: [0]), action: .drop, reason: .dropMalformed),
            Case(name: "IPv4 first fragment (MF set)", frame: ipv4Frame(vipIPv4(fragment: 0x2000)), action: .pass, reason: .passFragment),
            Case(name: "IPv4 later fragment (offset set)", frame: ipv4Frame(vipIPv4(fragment: 0x00b9)), action: .pass, reason: .passFragment),
            Case(name: "IPv6 fragment header", frame: ipv6Frame(fragment6), action: .pass, reason: .passFragment),
            Case(name: "IPv6 hop-by-hop extension header", frame: ipv6Frame(hopByHop), action: .pass, reason: .passUnsupported),
            Case(name: "GRE to a VIP address", frame: ipv4Frame(gre), action: .pass, reason: .passUnsupported),
            Case(name: "ARP", frame: arp, action: .pass, reason: .passNotIP),
        ]
    }

    @Test("Each malformed or unusual packet gets its verdict and its counter", arguments: cases)
    func verdict(_ testCase: Case) throws {
        let balancer = try makeBalancer()
        let (action, output) = try balancer.run(testCase.frame)
        #expect(action == testCase.action)
        if action == .pass { #expect(output == testCase.frame, "passed packets are untouched") }
        let stats = try balancer.stats()
        #expect(stats[testCase.reason] == 1)
        #expect(stats[.rx] == 1 && stats.outcomes == 1, "counted once, under one outcome")
        #expect(stats[.forward] == 0)
    }

    @Test("Every truncation of a valid packet is dropped or passed, never forwarded")
    func everyTruncation() throws {
        let balancer = try makeBalancer()
        let frames = [PacketBuilder.frame(for: Self.flow), PacketBuilder.frame(for: Self.flow6),
                      PacketBuilder.frame(for: Self.flow, vlan: 7)]
        var sent: UInt64 = 0
        for frame in frames {
            // BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header.
            for length in 14..<frame.count {
                let (action, _) = try balancer.run(Array(frame.prefix(length)))
                #expect(action != .tx, "truncated to \(length) of \(frame.count) bytes")
                sent += 1
            }
        }
        let stats = try balancer.stats()
        #expect(stats[.rx] == sent)
        #expect(stats.outcomes == sent)
        #expect(stats[.forward] == 0)
    }
}
