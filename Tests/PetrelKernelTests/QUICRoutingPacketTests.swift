import Foundation
import Petrel
import Testing
import PetrelTestSupport

/// QUIC connection-ID routing, packet by packet through the real balancer:
/// short headers go to the real whose server id their connection ID carries,
/// whatever their 5-tuple; everything else takes the normal path; each case
/// is counted, and explain() says the same as the kernel.
@Suite("QUIC connection-ID routing, packet by packet")
struct QUICRoutingPacketTests {
    static let quic4 = VipKey(address: ip("198.18.100.1"), port: 443, proto: .udp)
    static let quic6 = VipKey(address: ip("fd50:0:100::1"), port: 443, proto: .udp)
    static let ids: [UInt16] = [101, 102, 103]
    static func reals(_ base: [Real]) -> [Real] {
        zip(base, ids).map { Real(address: $0.address, quicServerId: $1) }
    }
    static var vips: [Vip] {
        [
            Vip(key: quic4, flags: .quic, reals: reals(TestVips.reals4)),
            Vip(key: quic6, flags: .quic, reals: reals(TestVips.reals6)),
            Vip(key: TestVips.dns4, reals: TestVips.reals4),  // plain UDP: no CID routing
        ]
    }

    static func shortHeader(serverId: UInt16, nonce: UInt8 = 0x5a) -> [UInt8] {
        [0x40] + QuicConnectionID.make(serverId: serverId, nonce: [nonce, 1, 2, 3, 4]) + [UInt8](repeating: 0xee, count: 24)
    }
    static let longHeader: [UInt8] = [0xc3, 0, 0, 0, 1, 8] + [UInt8](repeating: 0x11, count: 8) + [8] + [UInt8](repeating: 0x22, count: 8)
        + [UInt8](repeating: 0, count: 40)

    func flow(_ vip: VipKey, port: UInt16) -> Flow {
        let source = vip.address.family == .ipv4 ? ip("198.18.1.2") : ip("fd50:0:1::2")
        return Flow(proto: .udp, source: source, sourcePort: port, destination: vip.address, destinationPort: vip.port)
    }

    func destination(_ balancer: LoadBalancer, _ flow: Flow, payload: [UInt8], vlan: UInt16? = nil) throws -> IPAddress? {
        let (action, output) = try balancer.run(PacketBuilder.frame(for: flow, payload: payload, vlan: vlan))
        guard action == .tx else { return nil }
        return EncapsulatedFrame(output)?.outerDestination
    }

    @Test("A short header goes to the real its server id names, from any source port", arguments: [quic4, quic6])
    func routedByServerId(vip: VipKey) throws {
        let balancer = try makeBalancer(vips: Self.vips)
        let reals = Self.vips.first { $0.key == vip }!.reals
        var movedByHash = 0
        for (n, real) in reals.enumerated() {
            for port in UInt16(50000 + n * 100)..<UInt16(50000 + n * 100 + 40) {
                let flow = flow(vip, port: port)
                let payload = Self.shortHeader(serverId: real.quicServerId!)
                #expect(try destination(balancer, flow, payload: payload, vlan: port % 2 == 0 ? 7 : nil) == real.address)
                let explanation = try balancer.explain(flow, quicPayload: payload)
                #expect(explanation.real == real.address && explanation.quic?.outcome == .serverId(real.quicServerId!))
                if explanation.ringReal != real.address { movedByHash += 1 }
            }
        }
        let stats = try balancer.stats()
        #expect(stats[.eventQuicCIDRouted] == 120 && stats[.forward] == 120)
        #expect(stats[.eventNewConnection] == 0, "CID-routed packets need no table entry")
        #expect(movedByHash > 40, "the 5-tuple alone would have sent \(movedByHash) of 120 elsewhere")
    }

    @Test("Long headers are placed by the ring and remembered, as any new flow")
    func longHeaders() throws {
        let balancer = try makeBalancer(vips: Self.vips)
        for port in UInt16(40000)..<40050 {
            let flow = flow(Self.quic4, port: port)
            #expect(try destination(balancer, flow, payload: Self.longHeader) == balancer.explain(flow).ringReal)
            #expect(try balancer.explain(flow, quicPayload: Self.longHeader).quic?.outcome == .longHeader)
        }
        let stats = try balancer.stats()
        #expect(stats[.eventQuicLongHeader] == 50 && stats[.eventNewConnection] == 50 && stats[.eventQuicCIDRouted] == 0)
    }

    @Test("Unknown, zero and malformed ids fall back to the normal path, each counted")
    func fallbacks() throws {
        let balancer = try makeBalancer(vips: Self.vips)
        var unroutable = Self.shortHeader(serverId: 101)
        unroutable[1] = 0b1110_0111   // config rotation 0b111: QUIC-LB's "unroutable"
        var zero = Self.shortHeader(serverId: 101)
        zero[2] = 0
        zero[3] = 0
        let cases: [(String, [UInt8], StatReason)] = [
            ("unknown id 999", Self.shortHeader(serverId: 999), .eventQuicCIDUnknown),
            ("server id 0", zero, .eventQuicCIDZero),
            ("unroutable format", unroutable, .eventQuicCIDMalformed),
            ("cut short: 1 + 6 bytes", Array(Self.shortHeader(serverId: 101).prefix(7)), .eventQuicCIDMalformed),
            ("empty payload", [], .eventQuicCIDMalformed),
        ]
        for (n, (name, payload, reason)) in cases.enumerated() {
            let flow = flow(Self.quic4, port: UInt16(41000 + n))
            let before = try balancer.stats()
            #expect(try destination(balancer, flow, payload: payload) == balancer.explain(flow).ringReal, "\(name)")
            let explanation = try balancer.explain(flow, quicPayload: payload)
            #expect(explanation.quic?.real == nil && explanation.real == explanation.ringReal, "\(name)")
            let after = try balancer.stats()
            #expect(after[reason] == before[reason] + 1, "\(name) counted under \(reason.name)")
            #expect(after[.eventQuicCIDRouted] == 0)
            #expect(after[.eventNewConnection] == before[.eventNewConnection] + 1, "\(name): a normal new flow")
        }
    }

    @Test("A VIP without the quic flag ignores connection IDs")
    func plainUDP() throws {
        let balancer = try makeBalancer(vips: Self.vips)
        let flow = flow(TestVips.dns4, port: 42000)
        let payload = Self.shortHeader(serverId: 103)
        #expect(try destination(balancer, flow, payload: payload) == balancer.explain(flow).ringReal)
        #expect(try balancer.explain(flow, quicPayload: payload).quic == nil)
        let stats = try balancer.stats()
        for reason in [StatReason.eventQuicCIDRouted, .eventQuicLongHeader, .eventQuicCIDMalformed] { #expect(stats[reason] == 0) }
    }

    @Test("The server-id map follows the config: drained reals keep their connections, removed ones lose the route")
    func mapFollowsChanges() throws {
        let balancer = try makeBalancer(vips: Self.vips)
        let snapshot = try balancer.dataPlaneSnapshot()
        let index4 = snapshot.vips[Self.quic4]!.statsIndex
        let expected = Dictionary(uniqueKeysWithValues: Self.reals(TestVips.reals4).map { real in
            (real.quicServerId!, snapshot.reals.first { $0.value == real.address }!.key)
        })
        #expect(snapshot.quicServers[index4] == expected)

        var reals = Self.reals(TestVips.reals4)
        reals[1].weight = 0
        try balancer.apply([Vip(key: Self.quic4, flags: .quic, reals: reals)])
        let flow = flow(Self.quic4, port: 43000)
        #expect(try destination(balancer, flow, payload: Self.shortHeader(serverId: 102)) == reals[1].address, "drained: still its connections")

        reals.remove(at: 1)
        try balancer.apply([Vip(key: Self.quic4, flags: .quic, reals: reals)])
        #expect(try destination(balancer, flow, payload: Self.shortHeader(serverId: 102)) == balancer.explain(flow).ringReal)
        #expect(try balancer.stats()[.eventQuicCIDUnknown] == 1)
        let after = try balancer.dataPlaneSnapshot()
        #expect(after.quicServers.values.map(\.count).reduce(0, +) == 2, "the removed real's id is gone, the other VIPs' too")

        try balancer.apply([])
        #expect(try balancer.dataPlaneSnapshot().quicServers.isEmpty)
    }

    @Test("Bad QUIC settings are refused naming the field; nothing is written", arguments: [
        ("quic on TCP", [Vip(key: TestVips.web4, flags: .quic, reals: reals(TestVips.reals4))], "vips[0].flags"),
        ("a real without server id", [Vip(key: quic4, flags: .quic, reals: [Real(address: ip("198.18.3.11"))])], "vips[0].reals[0].quic_server_id"),
        ("a server id twice", [Vip(key: quic4, flags: .quic, reals: [Real(address: ip("198.18.3.11"), quicServerId: 7),
                                                                      Real(address: ip("198.18.3.12"), quicServerId: 7)])], "vips[0].reals[1].quic_server_id"),
        ("server id 0", [Vip(key: quic4, flags: .quic, reals: [Real(address: ip("198.18.3.11"), quicServerId: 0)])], "vips[0].reals[0].quic_server_id"),
        ("a server id without the quic flag", [Vip(key: quic4, reals: [Real(address: ip("198.18.3.11"), quicServerId: 5)])], "vips[0].reals[0].quic_server_id"),
    ])
    func refused(name: String, vips: [Vip], field: String) throws {
        let balancer = try makeBalancer(vips: Self.vips)
        let before = try balancer.dataPlaneSnapshot()
        #expect(performing: { try balancer.apply(vips) }, throws: { "\($0)".hasPrefix(field + ":") })
        #expect(try balancer.dataPlaneSnapshot() == before, "\(name)")
    }

    @Test("Pinned maps keep the server ids across a restart")
    func adoption() throws {
        let pin = "/sys/fs/bpf/petrel-quic-test-\(getpid())"
        let first = try makeBalancer(vips: Self.vips, pinPath: pin)
        defer { first.removePins() }
        let second = try LoadBalancer(limits: first.limits, pinPath: pin)
        #expect(second.adoptedPinnedMaps)
        let adopted = second.vips.first { $0.key == Self.quic4 }
        #expect(Set(adopted?.reals.compactMap(\.quicServerId) ?? []) == Set(Self.ids))
    }
}
