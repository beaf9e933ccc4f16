import Foundation
import Petrel
import Testing
import PetrelTestSupport

/// Backend choice in the kernel: stickiness, SYN re-decision, drain, agreement
/// with `explain`, counters.
@Suite("Choosing the real, in the kernel")
struct ConnectionPacketTests {
    /// Finds a flow whose ring real differs between two configurations.
    func flowMovedBy(change: () throws -> Void, balancer: LoadBalancer, candidates: [Flow]) throws -> (Flow, IPAddress, IPAddress)? {
        let before = try candidates.map { try balancer.explain($0).ringReal }
        try change()
        for (flow, old) in zip(candidates, before) {
            let new = try balancer.explain(flow).ringReal
            if let old, let new, old != new { return (flow, old, new) }
        }
        return nil
    }

    @Test("A flow keeps its real when the ring changes; a new SYN takes the new ring")
    func stickinessAndSynRedecision() throws {
        let balancer = try makeBalancer()
        let candidates = webFlows(200)
        for flow in candidates { _ = try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn) }

        let fourth = Real(address: ip("198.18.3.14"))
        let moved = try flowMovedBy(change: {
            try balancer.upsert(Vip(key: TestVips.web4, reals: TestVips.reals4 + [fourth]))
        }, balancer: balancer, candidates: candidates)
        let (flow, old, new) = try #require(moved, "adding a real moves some flows on the ring")

        #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.ack) == old, "established flow stays (connection table)")
        #expect(try balancer.explain(flow).rememberedReal == old)
        #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn) == new, "a SYN decides afresh")
        #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.ack) == new, "and is remembered")
        // A new decision goes to the shared table; the CPU's own table learns the flow
        // from its second packet, and a fresh SYN overwrites what it had learnt.
        let stats = try balancer.stats()
        #expect(stats[.eventSharedTableHit] >= 1)
        #expect(stats[.eventConnectionHit] >= 1)
    }

    @Test("SYN-flood guard: below the threshold decisions are remembered; above it they forward unremembered, and established flows keep their reals")
    func synFloodGuard() throws {
        let balancer = try makeBalancer()
        var settings = try #require(try balancer.forwardingSettings())
        settings.synFloodThreshold = 20
        try balancer.configureForwarding(settings)
        #expect(try balancer.forwardingSettings()?.synFloodThreshold == 20)

        // 20 new connections fit in this second's budget: every one is remembered.
        let established = webFlows(20, seed: 7)
        for flow in established { _ = try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn) }
        for flow in established { #expect(try balancer.explain(flow).rememberedReal != nil, "\(flow) remembered below the threshold") }
        #expect(try balancer.stats()[.eventSynFlood] == 0)

        // A flood: every further SYN still forwards, by the ring, but is not written.
        let flood = webFlows(300, seed: 8)
        for flow in flood {
            #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn) == (try balancer.explain(flow).ringReal))
        }
        let stats = try balancer.stats()
        #expect(stats[.eventSynFlood] == 300, "the test runs well inside one second")
        #expect(stats[.eventNewConnection] == 320)
        for flow in flood { #expect(try balancer.explain(flow).rememberedReal == nil, "\(flow) written during the flood") }

        // A second later (the window counts the kernel's ticks) new decisions are written again.
        Thread.sleep(forTimeInterval: 1.2)
        let later = webFlows(5, seed: 9)
        for flow in later { _ = try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn) }
        for flow in later { #expect(try balancer.explain(flow).rememberedReal != nil, "\(flow) remembered in the next second") }
        #expect(try balancer.stats()[.eventSynFlood] == 300)

        // The established flows keep their reals through the flood, even after the ring moved them.
        let fourth = Real(address: ip("198.18.3.14"))
        let moved = try flowMovedBy(change: {
            try balancer.upsert(Vip(key: TestVips.web4, reals: TestVips.reals4 + [fourth]))
        }, balancer: balancer, candidates: established)
        let (flow, old, _) = try #require(moved, "adding a real moves some established flows on the ring")
        #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.ack) == old)
    }

    @Test("Weight 0 drains a real: established flows stay, new flows avoid it")
    func drain() throws {
        let balancer = try makeBalancer()
        let drained = TestVips.reals4[0].address
        let candidates = webFlows(300, seed: 2)
        var established: [Flow] = []
        for flow in candidates where try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn) == drained {
            established.append(flow)
        }
        #expect(established.count > 50)

        try balancer.setWeight(0, real: drained, vip: TestVips.web4)
        for flow in established {
            #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.ack) == drained)
        }
        for flow in webFlows(300, seed: 3) {
            let real = try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn)
            #expect(real != nil && real != drained)
        }
    }

    @Test("LRU bypass: the ring alone decides, even for established flows")
    func lruBypass() throws {
        let balancer = try makeBalancer(vips: [Vip(key: TestVips.web4, flags: .lruBypass, reals: TestVips.reals4)])
        let candidates = webFlows(200, seed: 4)
        for flow in candidates { _ = try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn) }
        let moved = try flowMovedBy(change: {
            try balancer.upsert(Vip(key: TestVips.web4, flags: .lruBypass, reals: TestVips.reals4 + [Real(address: ip("198.18.3.14"))]))
        }, balancer: balancer, candidates: candidates)
        let (flow, _, new) = try #require(moved)
        #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.ack) == new)
    }

    @Test("10,000 random flows: the kernel's real equals explain() for every one, and the shared table remembers it", arguments: [false, true])
    func explainAgreesWithKernel(ipv6: Bool) throws {
        let balancer = try makeBalancer(vips: TestVips.all + [
            Vip(key: VipKey(address: ip("198.18.100.3"), port: 443, proto: .tcp), flags: .hashWithoutSourcePort, reals: TestVips.reals4),
            Vip(key: VipKey(address: ip("198.18.100.4"), port: 0, proto: .udp), flags: .hashDestinationPortOnly,
                reals: TestVips.reals4 + [Real(address: ip("198.18.3.20"), weight: 3)]),
        ])
        var rng = SeededGenerator(seed: ipv6 ? 11 : 10)
        let targets: [(IPAddress, UInt16?, L4Protocol)] = ipv6
            ? [(ip("fd50:0:100::1"), 80, .tcp)]
            : [(ip("198.18.100.1"), 80, .tcp), (ip("198.18.100.1"), 53, .udp), (ip("198.18.100.2"), nil, .tcp),
               (ip("198.18.100.3"), 443, .tcp), (ip("198.18.100.4"), nil, .udp)]
        var mismatches: [String] = []
        var perReal: [IPAddress: Int] = [:]
        var decided: [(Flow, IPAddress)] = []
        for i in 0..<10_000 {
            let (address, port, proto) = targets[i % targets.count]
            let flow = Flow(proto: proto, source: randomClient(ipv6 ? .ipv6 : .ipv4, using: &rng),
                            sourcePort: UInt16.random(in: 1...65535, using: &rng),
                            destination: address, destinationPort: port ?? UInt16.random(in: 1...65535, using: &rng))
            let (action, output) = try balancer.run(PacketBuilder.frame(for: flow))
            let chosen = action == .tx ? EncapsulatedFrame(output)?.outerDestination : nil
            let predicted = try balancer.explain(flow).ringReal
            if chosen == nil || chosen != predicted { mismatches.append("\(flow): kernel \(String(describing: chosen)), explain \(String(describing: predicted))") }
            if let chosen { perReal[chosen, default: 0] += 1; decided.append((flow, chosen)) }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches, first: \(mismatches.prefix(3))")
        #expect(perReal.count >= 3, "flows spread over the reals")
        // The shared table (4,096 flows in sets of 4) remembers the newest flows; an
        // older one it still holds names the same real, one it gave away none.
        let remembered = try decided.map { try balancer.explain($0.0).rememberedReal }
        #expect(zip(decided, remembered).allSatisfy { $1 == nil || $1 == $0.1 })
        #expect(zip(decided, remembered).suffix(100).allSatisfy { $1 == $0.1 }, "the newest 100 flows are remembered")
        #expect(remembered.compactMap { $0 }.count > 3_000, "most of the table is in use")
    }

    @Test("Removing every real empties the ring: packets are dropped and counted")
    func emptyRing() throws {
        let balancer = try makeBalancer()
        try balancer.upsert(Vip(key: TestVips.web4, reals: []))
        let flow = Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: 40000, destination: TestVips.web4.address, destinationPort: 80)
        #expect(try balancer.run(PacketBuilder.frame(for: flow)).action == .drop)
        #expect(try balancer.stats()[.dropNoReal] == 1)
        #expect(try balancer.explain(flow).ringReal == nil)
    }

    @Test("Counters are exact: per VIP, per real, and every outcome adds up to rx")
    func countersExact() throws {
        let balancer = try makeBalancer()
        var expectedReal: [IPAddress: UInt64] = [:]
        var expectedBytes: UInt64 = 0
        let sent = webFlows(100, seed: 5)
        for flow in sent {
            let frame = PacketBuilder.frame(for: flow)
            let real = try #require(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn))
            expectedReal[real, default: 0] += 1
            expectedBytes += UInt64(frame.count)
        }
        // 7 packets that are not for a VIP, 3 malformed ones (BPF_PROG_TEST_RUN
        // needs at least an Ethernet header's worth of bytes).
        for port: UInt16 in 1...7 {
            _ = try balancer.run(PacketBuilder.frame(for: Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: port, destination: ip("198.18.1.1"), destinationPort: 22)))
        }
        for length in [14, 20, 30] { _ = try balancer.run(Array(PacketBuilder.frame(for: sent[0]).prefix(length))) }

        let stats = try balancer.stats()
        #expect(stats[.rx] == 110)
        #expect(stats.outcomes == stats[.rx])
        #expect(stats[.forward] == 100)
        #expect(stats[.passNotVip] == 7)
        #expect(stats[.dropMalformed] == 3)
        #expect(stats[.eventNewConnection] == 100)
        #expect(stats.vips[TestVips.web4] == Traffic(packets: 100, bytes: expectedBytes))
        #expect(stats.vips[TestVips.dns4] == Traffic(packets: 0, bytes: 0))
        for (real, packets) in expectedReal { #expect(stats.reals[real]?.packets == packets) }
    }
}
