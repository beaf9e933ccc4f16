import Foundation
import Petrel
import Testing
import PetrelTestSupport

/// Packet in, packet out: the real balancer in the kernel (BPF_PROG_TEST_RUN),
/// maps filled by the Swift library, every output byte checked.
@Suite("Encapsulation, packet by packet")
struct EncapsulationPacketTests {
    let balancer: LoadBalancer

    init() throws { balancer = try makeBalancer() }

    @Test("IPv4 in IPv4: outer header, checksum, MACs, inner bytes unchanged")
    func ipv4InIPv4() throws {
        let flow = Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: 40000, destination: ip("198.18.100.1"), destinationPort: 80)
        let frame = PacketBuilder.frame(for: flow, payload: Array("hello".utf8))
        let (action, output) = try balancer.run(frame)
        #expect(action == .tx)
        let packet = try #require(EncapsulatedFrame(output))
        let expected = try balancer.explain(flow)

        #expect(packet.destinationMAC == nextHopMAC)
        #expect(packet.sourceMAC == interfaceMAC)
        #expect(packet.outerFamily == .ipv4)
        #expect(packet.outer[0] == 0x45)
        #expect(Int(be16(packet.outer, 2)) == 20 + frame.count - 14)
        #expect(be16(packet.outer, 6) == 0x4000, "Don't Fragment set, offset 0")
        #expect(packet.outer[8] == 64, "TTL")
        #expect(packet.outerProtocol == 4, "IPIP")
        #expect(PacketBuilder.internetChecksum(packet.outer) == 0, "outer checksum verifies")
        #expect(packet.outerDestination == expected.ringReal)
        #expect(TestVips.reals4.map(\.address).contains(packet.outerDestination))
        // Outer source: the /16 prefix, low 16 bits from the flow hash (for RSS on the real).
        #expect(Array(packet.outerSource.bytes.prefix(2)) == [198, 19])
        #expect(be16(packet.outerSource.bytes, 2) == UInt16(expected.hash & 0xffff))
        #expect(packet.inner == l3(of: frame))
    }

    @Test("IPv6 in IPv6: payload length, next header 41, hop limit, flow label, inner unchanged")
    func ipv6InIPv6() throws {
        let flow = Flow(proto: .tcp, source: ip("fd50:0:1::2"), sourcePort: 40001, destination: ip("fd50:0:100::1"), destinationPort: 80)
        let frame = PacketBuilder.frame(for: flow)
        let (action, output) = try balancer.run(frame)
        #expect(action == .tx)
        let packet = try #require(EncapsulatedFrame(output))
        let expected = try balancer.explain(flow)
        #expect(packet.destinationMAC == nextHopMAC && packet.sourceMAC == interfaceMAC)
        #expect(packet.outerFamily == .ipv6)
        #expect(packet.outer[0] >> 4 == 6)
        #expect(Int(be16(packet.outer, 4)) == frame.count - 14, "payload length is the inner packet")
        #expect(packet.outerProtocol == 41)
        #expect(packet.outer[7] == 64, "hop limit")
        let flowLabel = (UInt32(packet.outer[1] & 0x0f) << 16) | UInt32(be16(packet.outer, 2))
        #expect(flowLabel == expected.hash & 0xfffff)
        #expect(packet.outerDestination == expected.ringReal)
        #expect(Array(packet.outerSource.bytes.prefix(8)) == Array(ip("fd50:0:ffff::").bytes.prefix(8)))
        #expect(packet.inner == l3(of: frame))
    }

    @Test("IPv4 in IPv6 on a port-wildcard VIP: every port is served")
    func ipv4InIPv6Wildcard() throws {
        for port: UInt16 in [1, 22, 443, 65535] {
            let flow = Flow(proto: .tcp, source: ip("198.18.1.7"), sourcePort: 50000, destination: ip("198.18.100.2"), destinationPort: port)
            let frame = PacketBuilder.frame(for: flow)
            let (action, output) = try balancer.run(frame)
            #expect(action == .tx)
            let packet = try #require(EncapsulatedFrame(output))
            #expect(packet.outerFamily == .ipv6)
            #expect(packet.outerProtocol == 4, "IPv4 carried over IPv6")
            #expect(Int(be16(packet.outer, 4)) == frame.count - 14)
            #expect(TestVips.reals6.map(\.address).contains(packet.outerDestination))
            #expect(packet.outerDestination == (try balancer.explain(flow)).ringReal)
            #expect(packet.inner == l3(of: frame))
        }
        // The wildcard is per protocol: UDP to the same address is not a VIP.
        let udp = Flow(proto: .udp, source: ip("198.18.1.7"), sourcePort: 50000, destination: ip("198.18.100.2"), destinationPort: 53)
        #expect(try balancer.run(PacketBuilder.frame(for: udp)).action == .pass)
    }

    @Test("UDP VIP is forwarded; a VLAN tag is kept on the way out")
    func udpWithVLAN() throws {
        let flow = Flow(proto: .udp, source: ip("198.18.1.9"), sourcePort: 5353, destination: ip("198.18.100.1"), destinationPort: 53)
        let frame = PacketBuilder.frame(for: flow, payload: [1, 2, 3], vlan: 42)
        let (action, output) = try balancer.run(frame)
        #expect(action == .tx)
        let packet = try #require(EncapsulatedFrame(output))
        #expect(packet.vlan == 42)
        #expect(packet.outerProtocol == 4)
        #expect(packet.inner == l3(of: frame, vlan: true))
    }

    @Test("IPv4 options are carried untouched")
    func ipv4Options() throws {
        let tcp = PacketBuilder.tcp(sourcePort: 41000, destinationPort: 80, flags: PacketBuilder.TCPFlags.syn)
        let l3 = PacketBuilder.ipv4(source: ip("198.18.1.3"), destination: ip("198.18.100.1"), protocol: 6, payload: tcp, options: [1, 1, 1, 0])
        let frame = PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeIPv4, payload: l3)
        let (action, output) = try balancer.run(frame)
        #expect(action == .tx)
        let packet = try #require(EncapsulatedFrame(output))
        #expect(packet.inner == l3)
        let flow = Flow(proto: .tcp, source: ip("198.18.1.3"), sourcePort: 41000, destination: ip("198.18.100.1"), destinationPort: 80)
        #expect(packet.outerDestination == (try balancer.explain(flow)).ringReal, "ports found after the options")
    }

    @Test("Packets not for a VIP are passed to the kernel unchanged")
    func notForAVip() throws {
        let frames = [
            PacketBuilder.frame(for: Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: 1, destination: ip("198.18.100.1"), destinationPort: 81)),
            PacketBuilder.frame(for: Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: 1, destination: ip("198.18.100.9"), destinationPort: 80)),
            PacketBuilder.frame(for: Flow(proto: .udp, source: ip("fd50:0:1::2"), sourcePort: 1, destination: ip("fd50:0:100::1"), destinationPort: 80)),
        ]
        for frame in frames {
            let (action, output) = try balancer.run(frame)
            #expect(action == .pass)
            #expect(output == frame)
        }
        #expect(try balancer.stats()[.passNotVip] == UInt64(frames.count))
    }

    @Test("With too-big answers off, a packet that would exceed the MTU is dropped and counted, not sent broken")
    func tooBig() throws {
        try balancer.configureForwarding(ForwardingSettings(interfaceMAC: interfaceMAC, nextHopMAC: nextHopMAC, mtu: 1500, icmpTooBig: false))
        let flow = Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: 40000, destination: ip("198.18.100.1"), destinationPort: 80)
        // 1500-byte IP packet + 20 bytes of outer header > MTU 1500.
        let frame = PacketBuilder.frame(for: flow, tcpFlags: PacketBuilder.TCPFlags.ack, payload: [UInt8](repeating: 7, count: 1460))
        #expect(try balancer.run(frame).action == .drop)
        let fits = PacketBuilder.frame(for: flow, tcpFlags: PacketBuilder.TCPFlags.ack, payload: [UInt8](repeating: 7, count: 1440))
        #expect(try balancer.run(fits).action == .tx)
        let stats = try balancer.stats()
        #expect(stats[.dropTooBig] == 1)
        #expect(stats[.forward] == 1)
    }

    @Test("ICMP errors about a VIP flow follow the flow to its real")
    func icmpErrorFollowsFlow() throws {
        let flow = Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: 40100, destination: ip("198.18.100.1"), destinationPort: 80)
        // The quoted packet is the real's reply, VIP -> client.
        let reply = PacketBuilder.ipv4(source: flow.destination, destination: flow.source, protocol: 6,
                                       payload: PacketBuilder.tcp(sourcePort: 80, destinationPort: 40100, flags: PacketBuilder.TCPFlags.ack))
        let icmp = PacketBuilder.icmpError(type: 3, code: 4, quoting: Array(reply.prefix(28)))
        let l3 = PacketBuilder.ipv4(source: ip("198.18.1.1"), destination: flow.destination, protocol: 1, payload: icmp)
        let frame = PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeIPv4, payload: l3)
        let (action, output) = try balancer.run(frame)
        #expect(action == .tx)
        let packet = try #require(EncapsulatedFrame(output))
        #expect(packet.outerDestination == (try balancer.explain(flow)).ringReal)
        #expect(packet.inner == l3)
        #expect(try balancer.stats()[.eventICMPForward] == 1)

        // Other ICMP to the VIP address (here a timestamp request) is the kernel's business;
        // echo requests are answered (ICMPAnswerPacketTests).
        let timestamp = PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeIPv4,
                                               payload: PacketBuilder.ipv4(source: ip("198.18.1.2"), destination: flow.destination, protocol: 1, payload: [13, 0, 0, 0, 0, 1, 0, 1]))
        #expect(try balancer.run(timestamp).action == .pass)
        #expect(try balancer.stats()[.passICMP] == 1)
    }
}
