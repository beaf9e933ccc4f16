import Foundation
import Petrel
import PetrelBPF
import PetrelTestSupport
import Testing

/// The flow log in the kernel: which decisions the balancer writes to its ring,
/// with which fields; nothing while it is off; 1-in-N sampling; a full ring.
@Suite("Flow log, in the kernel")
struct FlowLogPacketTests {
    /// Collects the decisions the reader hands over.
    final class Decisions: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [FlowDecision] = []
        func add(_ decision: FlowDecision) { lock.withLock { items.append(decision) } }
        var all: [FlowDecision] { lock.withLock { items } }
        /// Waits (at most `seconds`) until `count` decisions have come; returns them all.
        func wait(for count: Int, seconds: Double = 5) -> [FlowDecision] {
            let deadline = Date().addingTimeInterval(seconds)
            while all.count < count && Date() < deadline { usleep(2000) }
            return all
        }
    }

    func following(_ balancer: LoadBalancer) throws -> (Decisions, BPFRingBufferReader) {
        let decisions = Decisions()
        let reader = try balancer.readFlowLog { decisions.add($0) }
        return (decisions, reader)
    }

    @Test("Off (the default): decisions are made, nothing is written or counted")
    func offWritesNothing() throws {
        let balancer = try makeBalancer()
        #expect(try balancer.flowLogSampling() == 0)
        let (decisions, reader) = try following(balancer)
        defer { reader.stop() }
        for flow in webFlows(50) { #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn) != nil) }
        usleep(100_000)
        #expect(decisions.all.isEmpty)
        let stats = try balancer.stats()
        #expect(stats[.eventNewConnection] == 50)
        #expect(stats[.eventFlowLogCandidate] == 0 && stats[.eventFlowLogEmitted] == 0 && stats[.eventFlowLogLost] == 0)
    }

    @Test("On: a new flow's decision is logged with its 5-tuple, VIP, real and reason; table hits are not; a mid-connection miss is ring_after_miss")
    func recordsDecisions() throws {
        let balancer = try makeBalancer()
        try balancer.setFlowLog(sampleEvery: 1)
        let (decisions, reader) = try following(balancer)
        defer { reader.stop() }

        let flow = webFlows(1, seed: 3)[0]
        let real = try #require(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn))
        #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.ack) == real)  // a table hit
        let first = try #require(decisions.wait(for: 1).first)
        #expect(first.flow == flow)
        #expect(first.real == real)
        #expect(balancer.vipKey(atIndex: first.vipIndex) == TestVips.web4)
        #expect(first.reason == .ring)
        #expect(first.remembered && !first.tablesBypassed)
        #expect(first.cpu < UInt32(BPFMap.possibleCPUs))
        let age = Date().timeIntervalSince(first.wallClock)
        #expect(age >= 0 && age < 5, "the record's time maps to now (\(age) s ago)")

        // An ACK of a flow nobody knew: re-decided by the ring.
        let lost = webFlows(1, seed: 4)[0]
        let lostReal = try #require(try forwardedDestination(balancer, lost, flags: PacketBuilder.TCPFlags.ack))
        // UDP: the first packet decides, the second hits the table. IPv6 too.
        let dns = Flow(proto: .udp, source: ip("198.18.7.7"), sourcePort: 5353, destination: TestVips.dns4.address, destinationPort: 53)
        let dnsReal = try #require(try forwardedDestination(balancer, dns, flags: 0))
        #expect(try forwardedDestination(balancer, dns, flags: 0) == dnsReal)
        let web6 = Flow(proto: .tcp, source: ip("fd50:0:1::9"), sourcePort: 40000, destination: TestVips.web6.address, destinationPort: 80)
        let web6Real = try #require(try forwardedDestination(balancer, web6, flags: PacketBuilder.TCPFlags.syn))

        let all = decisions.wait(for: 4)
        #expect(all.count == 4, "one record per decision, none for the table hits: \(all)")
        #expect(all.dropFirst().map(\.flow) == [lost, dns, web6])
        #expect(all.dropFirst().map(\.real) == [lostReal, dnsReal, web6Real])
        #expect(all.dropFirst().map(\.reason) == [.ringAfterMiss, .ring, .ring])
        #expect(balancer.vipKey(atIndex: all[3].vipIndex) == TestVips.web6)
        usleep(50_000)
        #expect(decisions.all.count == 4)
        let stats = try balancer.stats()
        #expect(stats[.eventFlowLogEmitted] == 4 && stats[.eventFlowLogCandidate] == 4 && stats[.eventFlowLogLost] == 0)

        // Off again: nothing more.
        try balancer.setFlowLog(sampleEvery: 0)
        _ = try forwardedDestination(balancer, webFlows(1, seed: 5)[0], flags: PacketBuilder.TCPFlags.syn)
        usleep(50_000)
        #expect(decisions.all.count == 4)
    }

    @Test("1 in N: every Nth decision per CPU is logged, the others are only counted")
    func sampling() throws {
        let balancer = try makeBalancer()
        try balancer.setFlowLog(sampleEvery: 4)
        let (decisions, reader) = try following(balancer)
        defer { reader.stop() }
        for flow in webFlows(100, seed: 9) { _ = try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn) }
        let stats = try balancer.stats()
        #expect(stats[.eventFlowLogCandidate] == 100)
        // Per CPU the 1st, 5th, 9th... decision is logged: 25, plus at most one more per extra CPU used.
        let emitted = Int(stats[.eventFlowLogEmitted])
        #expect((25..<(25 + BPFMap.possibleCPUs)).contains(emitted))
        #expect(decisions.wait(for: emitted).count == emitted)
        usleep(50_000)
        #expect(decisions.all.count == emitted)
    }

    @Test("A full ring drops records and counts them; decisions still forward; a reader then gets what was kept")
    func fullRing() throws {
        let balancer = try makeBalancer()
        try balancer.setFlowLog(sampleEvery: 1)
        // A SYN always decides afresh: one frame run 5,000 times is 5,000 decisions,
        // more than the 256 KiB ring holds (~2,900 records of 80 bytes).
        let frame = PacketBuilder.frame(for: webFlows(1, seed: 11)[0], tcpFlags: PacketBuilder.TCPFlags.syn)
        var forwarded = 0
        for _ in 0..<5000 where try balancer.run(frame).action == .tx { forwarded += 1 }
        #expect(forwarded == 5000)
        let stats = try balancer.stats()
        #expect(stats[.eventFlowLogCandidate] == 5000)
        #expect(stats[.eventFlowLogLost] > 0)
        #expect(stats[.eventFlowLogEmitted] + stats[.eventFlowLogLost] == 5000)
        let (decisions, reader) = try following(balancer)
        defer { reader.stop() }
        let kept = Int(stats[.eventFlowLogEmitted])
        #expect(decisions.wait(for: kept).count == kept)
    }

    @Test("A decision made by a source route says so; a client outside every prefix gets the ring")
    func sourcePrefixReason() throws {
        let pinned = TestVips.reals4[2].address
        let balancer = try makeBalancer(vips: TestVips.all.map {
            $0.key == TestVips.web4
                ? Vip(key: TestVips.web4, reals: TestVips.reals4, sourceRoutes: [SourceRoute(prefix: IPPrefix("198.18.70.0/24")!, real: pinned)])
                : $0
        })
        try balancer.setFlowLog(sampleEvery: 1)
        let (decisions, reader) = try following(balancer)
        defer { reader.stop() }
        let routed = Flow(proto: .tcp, source: ip("198.18.70.8"), sourcePort: 3000, destination: TestVips.web4.address, destinationPort: 80)
        let other = Flow(proto: .tcp, source: ip("203.0.113.7"), sourcePort: 3000, destination: TestVips.web4.address, destinationPort: 80)
        #expect(try forwardedDestination(balancer, routed, flags: PacketBuilder.TCPFlags.syn) == pinned)
        _ = try forwardedDestination(balancer, other, flags: PacketBuilder.TCPFlags.syn)
        let both = decisions.wait(for: 2)
        #expect(both.map(\.flow) == [routed, other])
        #expect(both.map(\.reason) == [.sourcePrefix, .ring])
        #expect(both.first?.real == pinned)
    }

    @Test("Flags: a decision the SYN-flood guard keeps out of the tables is not remembered; an lru_bypass VIP's bypasses them")
    func flags() throws {
        let bypass = VipKey(address: ip("198.18.100.9"), port: 80, proto: .tcp)
        let balancer = try makeBalancer(vips: TestVips.all + [Vip(key: bypass, flags: .lruBypass, reals: TestVips.reals4)])
        var settings = try #require(try balancer.forwardingSettings())
        settings.synFloodThreshold = 3
        try balancer.configureForwarding(settings)
        try balancer.setFlowLog(sampleEvery: 1)
        let (decisions, reader) = try following(balancer)
        defer { reader.stop() }
        // Below and above the threshold (this second; on one CPU unless the thread moves).
        for flow in webFlows(6, seed: 12) { _ = try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn) }
        let flows = decisions.wait(for: 6)
        #expect(flows.count == 6)
        let floodCount = try balancer.stats()[.eventSynFlood]
        #expect(floodCount > 0)
        #expect(flows.filter { !$0.remembered }.count == Int(floodCount), "exactly the decisions the guard counted are marked")

        let viaBypass = Flow(proto: .tcp, source: ip("198.18.8.8"), sourcePort: 1234, destination: bypass.address, destinationPort: 80)
        _ = try forwardedDestination(balancer, viaBypass, flags: PacketBuilder.TCPFlags.ack)
        let last = try #require(decisions.wait(for: 7).last)
        #expect(last.flow == viaBypass && last.tablesBypassed && last.reason == .ring)
    }
}
