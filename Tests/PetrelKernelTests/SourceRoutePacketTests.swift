import Foundation
import Petrel
import Testing
import PetrelTestSupport

/// Source-prefix routing, packet by packet through the real balancer: a new
/// flow from a client prefix pinned to a real goes there, the longest prefix
/// winning; it is remembered like any decision; a real out of service leaves
/// its prefix to the ring; other VIPs never look. explain() says the same.
@Suite("Source-prefix routing, packet by packet")
struct SourceRoutePacketTests {
    /// Nested prefixes per family, each pinned to another real, and the clients
    /// each must catch: (client, the prefix that decides, or nil for the ring).
    struct Case: Sendable, CustomStringConvertible {
        let vip: VipKey
        let reals: [Real]
        let routes: [SourceRoute]
        let clients: [(IPAddress, IPPrefix?)]
        var description: String { "\(vip.address.family)" }
    }

    static func route(_ prefix: String, _ real: Real) -> SourceRoute { SourceRoute(prefix: IPPrefix(prefix)!, real: real.address) }

    static let v4 = Case(
        vip: TestVips.web4, reals: TestVips.reals4,
        routes: [route("198.18.0.0/16", TestVips.reals4[0]), route("198.18.64.0/18", TestVips.reals4[1]),
                 route("198.18.70.0/24", TestVips.reals4[2]), route("198.18.70.9/32", TestVips.reals4[0])],
        clients: [(ip("198.18.1.5"), IPPrefix("198.18.0.0/16")), (ip("198.18.65.1"), IPPrefix("198.18.64.0/18")),
                  (ip("198.18.70.8"), IPPrefix("198.18.70.0/24")), (ip("198.18.70.9"), IPPrefix("198.18.70.9/32")),
                  (ip("198.19.70.9"), nil), (ip("203.0.113.7"), nil)])
    static let v6 = Case(
        vip: TestVips.web6, reals: TestVips.reals6,
        routes: [route("fd50:0:1::/48", TestVips.reals6[0]), route("fd50:0:1:8000::/49", TestVips.reals6[1]),
                 route("fd50:0:1:8000::5/128", TestVips.reals6[2])],
        clients: [(ip("fd50:0:1:7fff::1"), IPPrefix("fd50:0:1::/48")), (ip("fd50:0:1:8000::6"), IPPrefix("fd50:0:1:8000::/49")),
                  (ip("fd50:0:1:8000::5"), IPPrefix("fd50:0:1:8000::5/128")), (ip("fd50:0:2::1"), nil)])

    static func vips(_ routed: Case) -> [Vip] {
        TestVips.all.map { $0.key == routed.vip ? Vip(key: routed.vip, reals: routed.reals, sourceRoutes: routed.routes) : $0 }
    }

    func flow(_ vip: VipKey, from client: IPAddress, port: UInt16) -> Flow {
        Flow(proto: vip.proto, source: client, sourcePort: port, destination: vip.address, destinationPort: vip.port == 0 ? 443 : vip.port)
    }

    @Test("The longest prefix decides; clients outside every prefix get the ring's real", arguments: [v4, v6])
    func longestPrefixWins(routed: Case) throws {
        let balancer = try makeBalancer(vips: Self.vips(routed))
        var routedCount: UInt64 = 0, movedFromRing = 0
        for (n, (client, prefix)) in routed.clients.enumerated() {
            for port in UInt16(20000 + n * 100)..<UInt16(20000 + n * 100 + 25) {
                let flow = flow(routed.vip, from: client, port: port)
                let explanation = try balancer.explain(flow)
                let expected = prefix.map { p in routed.routes.first { $0.prefix == p }!.real } ?? explanation.ringReal
                #expect(explanation.sourceRoute?.prefix == prefix, "\(client)")
                #expect(explanation.newConnectionReal == expected)
                #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn) == expected, "\(client) port \(port)")
                if prefix != nil {
                    routedCount += 1
                    if explanation.ringReal != expected { movedFromRing += 1 }
                }
            }
        }
        let stats = try balancer.stats()
        #expect(stats[.eventSourceRouted] == routedCount)
        #expect(stats[.eventNewConnection] == UInt64(routed.clients.count * 25), "routed or not, each SYN is a new decision")
        #expect(movedFromRing > 20, "the ring alone would have sent \(movedFromRing) of \(routedCount) elsewhere")
        #expect(try balancer.explain(flow(routed.vip, from: routed.clients[0].0, port: 1)).description.contains("source   \(routed.clients[0].1!)"))
    }

    @Test("A routed decision is remembered: the flow keeps its real after the route is gone, a new SYN takes the ring's")
    func remembered() throws {
        let balancer = try makeBalancer(vips: Self.vips(Self.v4))
        let pinned = TestVips.reals4[1].address
        // A client whose ring real is another one, so keeping the route's real proves the table.
        let candidates = (UInt16(30000)..<31000).map { self.flow(TestVips.web4, from: ip("198.18.65.1"), port: $0) }
        let flow = try #require(try candidates.first { try balancer.explain($0).ringReal != pinned })
        #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn) == pinned)
        try balancer.apply(TestVips.all)  // the routes go
        #expect(try balancer.dataPlaneSnapshot().sourceRouteIds(of: TestVips.web4) == [:])
        let before = try balancer.stats()
        #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.ack) == pinned)
        #expect(try balancer.explain(flow).rememberedReal == pinned)
        let after = try balancer.stats()
        #expect(after[.eventSharedTableHit] + after[.eventConnectionHit] == before[.eventSharedTableHit] + before[.eventConnectionHit] + 1)
        #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn) == balancer.explain(flow).ringReal)
        #expect(try balancer.stats()[.eventSourceRouted] == 1)
    }

    @Test("Other VIPs never consult the routes: the same clients are placed by their ring")
    func otherVipsUnaffected() throws {
        let balancer = try makeBalancer(vips: Self.vips(Self.v4))
        let snapshot = try balancer.dataPlaneSnapshot()
        for (key, entry) in snapshot.vips {
            #expect((entry.flags.rawValue & 0x10 != 0) == (key == TestVips.web4), "only the VIP with routes carries the flag: \(key)")
        }
        // The DNS VIP shares address and reals with the routed web VIP.
        for port in UInt16(40000)..<40050 {
            let flow = Flow(proto: .udp, source: ip("198.18.65.1"), sourcePort: port, destination: TestVips.dns4.address, destinationPort: 53)
            let (action, output) = try balancer.run(PacketBuilder.frame(for: flow))
            let ringReal = try balancer.explain(flow).ringReal
            #expect(action == .tx && EncapsulatedFrame(output)?.outerDestination == ringReal)
            #expect(try balancer.explain(flow).sourceRoute == nil)
        }
        #expect(try balancer.stats()[.eventSourceRouted] == 0)
    }

    @Test("A drained or down real leaves its prefix to the ring, and gets it back")
    func outOfService() throws {
        let balancer = try makeBalancer(vips: Self.vips(Self.v4))
        let pinned = TestVips.reals4[1].address
        let flows = (UInt16(50000)..<50060).map { flow(TestVips.web4, from: ip("198.18.65.1"), port: $0) }
        func destinations() throws -> [IPAddress?] {
            try flows.map { try forwardedDestination(balancer, $0, flags: PacketBuilder.TCPFlags.syn) }
        }
        #expect(try destinations().allSatisfy { $0 == pinned })

        // Health checks take the real out: the ring places the prefix, never on the real.
        try balancer.setRealsDown([VipReal(vip: TestVips.web4, real: pinned)])
        #expect(try balancer.dataPlaneSnapshot().sourceRouteIds(of: TestVips.web4)?[IPPrefix("198.18.64.0/18")!] == 0)
        let down = try destinations()
        let ringReals = try flows.map { try balancer.explain($0).ringReal }
        #expect(down == ringReals && !down.contains(pinned))
        #expect(try balancer.explain(flows[0]).sourceRoute?.inService == false)
        #expect(try balancer.explain(flows[0]).description.contains("out of service"))

        try balancer.setRealsDown([])
        #expect(try destinations().allSatisfy { $0 == pinned })

        // An operator's drain does the same.
        var drained = Self.vips(Self.v4)
        drained[0].reals[1].weight = 0
        try balancer.apply(drained)
        #expect(try !destinations().contains(pinned))
        #expect(try balancer.stats()[.eventSourceRouted] == 120)
    }

    @Test("Removing routes, or the VIP, deletes its trie entries; adding them back works")
    func removal() throws {
        let balancer = try makeBalancer(vips: Self.vips(Self.v4))
        let ids = try #require(try balancer.dataPlaneSnapshot().sourceRouteIds(of: TestVips.web4))
        #expect(Set(ids.keys) == Set(Self.v4.routes.map(\.prefix)) && !ids.values.contains(0))

        // One route less: the /24's clients fall to the /18 around them.
        var fewer = Self.vips(Self.v4)
        fewer[0].sourceRoutes.removeAll { $0.prefix == IPPrefix("198.18.70.0/24") }
        try balancer.apply(fewer)
        let client = flow(TestVips.web4, from: ip("198.18.70.8"), port: 33333)
        #expect(try forwardedDestination(balancer, client, flags: PacketBuilder.TCPFlags.syn) == TestVips.reals4[1].address)
        #expect(try balancer.dataPlaneSnapshot().sourceRouteIds(of: TestVips.web4)?.count == 3)

        try balancer.apply(TestVips.all)
        let cleared = try balancer.dataPlaneSnapshot()
        #expect(cleared.sourceRouteIds(of: TestVips.web4) == [:])
        #expect(cleared.vips[TestVips.web4]!.flags.rawValue & 0x10 == 0)
        #expect(try forwardedDestination(balancer, client, flags: PacketBuilder.TCPFlags.syn) == balancer.explain(client).ringReal)

        try balancer.apply(Self.vips(Self.v4))
        #expect(try forwardedDestination(balancer, client, flags: PacketBuilder.TCPFlags.syn) == TestVips.reals4[2].address)
        try balancer.apply(Array(TestVips.all.dropFirst()))
        #expect(try balancer.dataPlaneSnapshot().vips.keys.map { try balancer.dataPlaneSnapshot().sourceRouteIds(of: $0) }.allSatisfy { $0 == [:] })
        #expect(try balancer.stats()[.eventSourceRouted] == 2)
    }

    @Test("An ICMP error about a routed flow goes to the flow's pinned real")
    func icmpFollowsTheRoute() throws {
        let balancer = try makeBalancer(vips: Self.vips(Self.v4))
        let pinned = TestVips.reals4[2].address
        let flow = flow(TestVips.web4, from: ip("198.18.70.8"), port: 34567)
        let quoted = PacketBuilder.ipv4(source: flow.destination, destination: flow.source, protocol: 6,
                                        payload: PacketBuilder.tcp(sourcePort: flow.destinationPort, destinationPort: flow.sourcePort, flags: PacketBuilder.TCPFlags.ack))
        let icmp = PacketBuilder.icmpError(type: 3, code: 4, quoting: quoted)
        let frame = PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeIPv4,
                                           payload: PacketBuilder.ipv4(source: ip("198.18.9.1"), destination: flow.destination, protocol: 1, payload: icmp))
        let (action, output) = try balancer.run(frame)
        #expect(action == .tx && EncapsulatedFrame(output)?.outerDestination == pinned)
        #expect(try balancer.stats()[.eventICMPForward] == 1)
    }

    @Test("Routes on an lru_bypass VIP decide every packet, with no table")
    func lruBypass() throws {
        let balancer = try makeBalancer(vips: [Vip(key: TestVips.web4, flags: .lruBypass, reals: TestVips.reals4, sourceRoutes: Self.v4.routes)])
        for port in UInt16(36000)..<36020 {
            let flow = flow(TestVips.web4, from: ip("198.18.65.1"), port: port)
            #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.ack) == TestVips.reals4[1].address)
        }
        #expect(try balancer.stats()[.eventSourceRouted] == 20)
    }

    @Test("Bad routes are refused naming the field; nothing is written", arguments: [
        ("a real not of the VIP", [route("198.18.0.0/16", Real(address: ip("198.18.3.99")))], "vips[0].source_routes[0].real"),
        ("host bits set", [route("198.18.1.0/16", TestVips.reals4[0])], "vips[0].source_routes[0].prefix"),
        ("IPv6 prefix on an IPv4 VIP", [route("fd50::/16", TestVips.reals4[0])], "vips[0].source_routes[0].prefix"),
        ("a prefix twice", [route("198.18.0.0/16", TestVips.reals4[0]), route("198.18.0.0/16", TestVips.reals4[1])], "vips[0].source_routes[1].prefix"),
        ("length 33", [route("198.18.0.0/33", TestVips.reals4[0])], "vips[0].source_routes[0].prefix"),
    ])
    func refused(name: String, routes: [SourceRoute], field: String) throws {
        let balancer = try makeBalancer(vips: Self.vips(Self.v4))
        let before = try balancer.dataPlaneSnapshot()
        let bad = [Vip(key: TestVips.web4, reals: TestVips.reals4, sourceRoutes: routes)]
        #expect(performing: { try balancer.apply(bad) }, throws: { "\($0)".hasPrefix(field + ":") })
        #expect(try balancer.dataPlaneSnapshot() == before, "\(name)")
    }

    @Test("Pinned maps keep the routes across a restart")
    func adoption() throws {
        let pin = "/sys/fs/bpf/petrel-srcroute-test-\(getpid())"
        let first = try makeBalancer(vips: Self.vips(Self.v4), pinPath: pin)
        defer { first.removePins() }
        let second = try LoadBalancer(limits: first.limits, pinPath: pin)
        #expect(second.adoptedPinnedMaps)
        let adopted = second.vips.first { $0.key == TestVips.web4 }
        #expect(Set(adopted?.sourceRoutes ?? []) == Set(Self.v4.routes))
        try second.apply(Self.vips(Self.v4))
        let flow = flow(TestVips.web4, from: ip("198.18.65.1"), port: 37000)
        #expect(try forwardedDestination(second, flow, flags: PacketBuilder.TCPFlags.syn) == TestVips.reals4[1].address)
    }
}
