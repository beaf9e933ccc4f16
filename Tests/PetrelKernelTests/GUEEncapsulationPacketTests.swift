import Foundation
import Petrel
import Testing
import PetrelTestSupport

/// GUE towards reals that want UDP: packet in, packet out through the real
/// balancer (BPF_PROG_TEST_RUN), every byte of the outer IP and UDP headers
/// checked, the inner packet unchanged, and the reals' decapsulator handing the
/// kernel exactly the client's packet.
@Suite("GUE encapsulation, packet by packet")
struct GUEEncapsulationPacketTests {
    static let gueReals4 = TestVips.reals4.map { Real(address: $0.address, encapsulation: .gue) }
    static let gueReals6 = TestVips.reals6.map { Real(address: $0.address, encapsulation: .gue) }
    static var vips: [Vip] {
        [
            Vip(key: TestVips.web4, reals: gueReals4),
            Vip(key: TestVips.dns4, reals: gueReals4),
            Vip(key: TestVips.web6, reals: gueReals6),
            Vip(key: TestVips.any4in6, reals: gueReals6),
        ]
    }

    static let flows = [
        ("4 in 4", Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: 40000, destination: ip("198.18.100.1"), destinationPort: 80)),
        ("4 in 4, UDP", Flow(proto: .udp, source: ip("198.18.1.2"), sourcePort: 40001, destination: ip("198.18.100.1"), destinationPort: 53)),
        ("6 in 6", Flow(proto: .tcp, source: ip("fd50:0:1::2"), sourcePort: 40002, destination: ip("fd50:0:100::1"), destinationPort: 80)),
        ("4 in 6", Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: 40003, destination: ip("198.18.100.2"), destinationPort: 8443)),
    ]

    @Test("Every family: outer IP says UDP, UDP to the GUE port from a flow-hash port, inner bytes unchanged",
          arguments: flows)
    func everyFamily(name: String, flow: Flow) throws {
        let balancer = try makeBalancer(vips: Self.vips)
        let frame = PacketBuilder.frame(for: flow, payload: Array("hello GUE".utf8))
        let inner = l3(of: frame)
        let (action, output) = try balancer.run(frame)
        #expect(action == .tx, "\(name)")
        let packet = try #require(EncapsulatedFrame(output))
        let expected = try balancer.explain(flow)
        #expect(expected.encapsulation == .gue)
        #expect(packet.destinationMAC == nextHopMAC && packet.sourceMAC == interfaceMAC)
        #expect(packet.outerProtocol == 17, "\(name): UDP")
        #expect(packet.outerDestination == expected.ringReal)
        if packet.outerFamily == .ipv4 {
            #expect(Int(be16(packet.outer, 2)) == 20 + 8 + inner.count, "total length covers UDP and the inner packet")
            #expect(PacketBuilder.internetChecksum(packet.outer) == 0, "outer checksum verifies")
            #expect(be16(packet.outerSource.bytes, 2) == UInt16(expected.hash & 0xffff))
        } else {
            #expect(Int(be16(packet.outer, 4)) == 8 + inner.count, "payload length covers UDP and the inner packet")
            let flowLabel = (UInt32(packet.outer[1] & 0x0f) << 16) | UInt32(be16(packet.outer, 2))
            #expect(flowLabel == expected.hash & 0xfffff)
        }
        let udp = Array(packet.inner.prefix(8))
        #expect(be16(udp, 0) == UInt16(0xc000 | (expected.hash >> 16) & 0x3fff), "source port: ephemeral range, from the flow hash")
        #expect(be16(udp, 2) == ForwardingSettings.defaultGUEPort)
        #expect(Int(be16(udp, 4)) == 8 + inner.count)
        #expect(be16(udp, 6) == 0, "checksum 0 (RFC 6935 for IPv6 tunnels)")
        #expect(Array(packet.inner.dropFirst(8)) == inner, "GUE variant 1: the inner packet right after UDP")

        let stats = try balancer.stats()
        #expect(stats[.forward] == 1 && stats[.eventGUEForward] == 1)

        // The real's decapsulator gives the kernel the client's packet back.
        let decapsulator = try Decapsulator(localAddresses: [packet.outerDestination])
        let decapsulated = try decapsulator.program.testRun(packet: output)
        #expect(XDPAction(rawValue: decapsulated.returnValue) == .pass)
        #expect(Array(decapsulated.packet.dropFirst(14)) == inner)
        #expect(try decapsulator.stats()[.decapsulatedGUE] == 1)
    }

    @Test("Different flows get different outer source ports, so the real's RSS spreads them")
    func sourcePortsSpread() throws {
        let balancer = try makeBalancer(vips: Self.vips)
        var ports = Set<UInt16>()
        for port in UInt16(30000)..<30200 {
            let flow = Flow(proto: .udp, source: ip("198.18.1.2"), sourcePort: port, destination: ip("198.18.100.1"), destinationPort: 53)
            let packet = try #require(EncapsulatedFrame(try balancer.run(PacketBuilder.frame(for: flow)).packet))
            let sourcePort = be16(packet.inner, 0)
            #expect((0xc000...0xffff).contains(sourcePort))
            ports.insert(sourcePort)
        }
        #expect(ports.count > 180, "200 flows spread over \(ports.count) source ports")
    }

    @Test("The configured GUE port is used, and GUE's 8 bytes count against the MTU")
    func portAndMTU() throws {
        let balancer = try makeBalancer(vips: Self.vips, mtu: 1400)
        try balancer.configureForwarding(ForwardingSettings(interfaceMAC: interfaceMAC, nextHopMAC: nextHopMAC, mtu: 1400, guePort: 9999))
        #expect(try balancer.forwardingSettings()?.guePort == 9999)
        let flow = Flow(proto: .udp, source: ip("198.18.1.2"), sourcePort: 40000, destination: ip("198.18.100.1"), destinationPort: 53)
        // 1400 - 20 (outer IPv4) - 8 (UDP) = 1372 bytes of inner packet fit; one more does not.
        let fits = PacketBuilder.frame(for: flow, payload: [UInt8](repeating: 7, count: 1372 - 28))
        let (action, output) = try balancer.run(fits)
        #expect(action == .tx)
        #expect(be16(try #require(EncapsulatedFrame(output)).inner, 2) == 9999)
        // One byte more is answered with "fragmentation needed" naming exactly that limit.
        let tooBig = PacketBuilder.frame(for: flow, payload: [UInt8](repeating: 7, count: 1373 - 28))
        let (answerAction, answer) = try balancer.run(tooBig)
        #expect(answerAction == .tx)
        #expect(answer.count == 14 + 576 && answer[14 + 20] == 3 && answer[14 + 21] == 4)
        #expect(be16(answer, 14 + 26) == 1372, "next-hop MTU: 1400 less IPv4 and UDP")
        #expect(try balancer.stats()[.replyTooBig] == 1)
    }

    @Test("IP-in-IP and GUE reals side by side; switching a real to GUE keeps its flows")
    func mixedAndSwitched() throws {
        var reals = TestVips.reals4
        reals[0].encapsulation = .gue
        let balancer = try makeBalancer(vips: [Vip(key: TestVips.web4, reals: reals)])
        var protocols: [IPAddress: UInt8] = [:]
        var flowsByReal: [IPAddress: Flow] = [:]
        for port in UInt16(20000)..<20100 {
            let flow = Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: port, destination: ip("198.18.100.1"), destinationPort: 80)
            let packet = try #require(EncapsulatedFrame(try balancer.run(PacketBuilder.frame(for: flow)).packet))
            protocols[packet.outerDestination] = packet.outerProtocol
            flowsByReal[packet.outerDestination] = flow
        }
        #expect(protocols[reals[0].address] == 17)
        #expect(protocols[reals[1].address] == 4 && protocols[reals[2].address] == 4)

        // Real 2 switches to GUE: an established flow of it stays on it, now in UDP.
        let flow = try #require(flowsByReal[reals[1].address])
        reals[1].encapsulation = .gue
        let report = try balancer.apply([Vip(key: TestVips.web4, reals: reals)])
        #expect(report.realsAdded == 0 && report.realsRemoved == 0)
        let ack = PacketBuilder.frame(for: flow, tcpFlags: PacketBuilder.TCPFlags.ack)
        let packet = try #require(EncapsulatedFrame(try balancer.run(ack).packet))
        #expect(packet.outerDestination == reals[1].address && packet.outerProtocol == 17)
        #expect(try balancer.dataPlaneSnapshot().realEncapsulation.values.filter { $0 == .gue }.count == 2)
    }

    @Test("A real is reached one way by every VIP: a conflict is refused naming the field, nothing written")
    func conflictingEncapsulation() throws {
        let balancer = try makeBalancer()
        let before = try balancer.dataPlaneSnapshot()
        var vips = TestVips.all
        vips[1].reals[2].encapsulation = .gue   // dns4 lists 198.18.3.13 as GUE, web4 as IP-in-IP
        #expect {
            try balancer.apply(vips)
        } throws: { error in
            "\(error)".contains("vips[1].reals[2].encapsulation") && "\(error)".contains("vips[0].reals[2].encapsulation")
        }
        #expect(try balancer.dataPlaneSnapshot() == before)
        // Changing one VIP alone while another keeps the real as IP-in-IP is refused too.
        var dns = vips[1]
        dns.reals = TestVips.reals4.map { Real(address: $0.address, encapsulation: .gue) }
        #expect { try balancer.upsert(dns) } throws: { error in
            "\(error)".contains("vips[3].reals[0].encapsulation") && "\(error)".contains("vips[0].reals[0].encapsulation (ipip)")
        }
        #expect(try balancer.dataPlaneSnapshot() == before)
    }
}
