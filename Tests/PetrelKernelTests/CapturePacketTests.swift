import Foundation
import Glibc
import Petrel
import PetrelBPF
import PetrelTestSupport
import Synchronization
import Testing

/// Packet capture in the data plane (bpf/lib/capture.h), on the real program in
/// the kernel: with no capture nothing is recorded; a running capture records
/// exactly the packets its filter selects, with their outcome, VIP, real and
/// direction; 1-in-N sampling; a full ring is counted as lost.
@Suite(.serialized)
struct CapturePacketTests {
    /// Collects what the ring buffer delivers.
    final class Records: Sendable {
        final class Store: Sendable {
            let mutex = Mutex<[CapturedPacket]>([])
            func withLock<R>(_ body: (inout [CapturedPacket]) -> R) -> R { mutex.withLock { body(&$0) } }
        }
        private let packets = Store()
        let reader: BPFRingBufferReader

        init(_ balancer: LoadBalancer) throws {
            let packets = self.packets
            reader = try balancer.captures.reader(threadName: "test.capture") { bytes in
                guard let packet = CapturedPacket(record: bytes) else { return }
                packets.withLock { $0.append(packet) }
            }
        }

        /// Waits until `count` records came (up to `timeout`), then a little longer to catch any extra one.
        func wait(for count: Int, timeout: TimeInterval = 5) -> [CapturedPacket] {
            let deadline = Date().addingTimeInterval(timeout)
            while packets.withLock({ $0.count }) < count, Date() < deadline { usleep(5_000) }
            usleep(50_000)
            return packets.withLock { $0 }
        }

        func stop() { reader.stop() }
    }

    static func frame(_ proto: L4Protocol, _ source: String, _ sourcePort: UInt16, _ destination: String, _ port: UInt16,
                      payload: [UInt8] = Array("capture".utf8)) -> [UInt8] {
        PacketBuilder.frame(for: Flow(proto: proto, source: ip(source), sourcePort: sourcePort, destination: ip(destination), destinationPort: port),
                            tcpFlags: PacketBuilder.TCPFlags.syn, payload: payload)
    }

    @Test func withNoCaptureNothingIsRecorded() throws {
        let balancer = try makeBalancer()
        let records = try Records(balancer)
        defer { records.stop() }
        #expect(balancer.captures.running == 0)
        for port in UInt16(1)...50 {
            _ = try balancer.run(Self.frame(.tcp, "198.18.1.2", 40_000 + port, "198.18.100.1", 80))
            _ = try balancer.run(Self.frame(.udp, "198.18.1.2", 40_000 + port, "198.18.9.9", 53))
        }
        #expect(records.wait(for: 1, timeout: 0.5).isEmpty)
        for slot in 0..<CaptureSlots.count { #expect(try balancer.captures.counts(slot) == CaptureSlots.Counts()) }
        // The same traffic with a capture running is recorded: the reader and the ring work.
        var all = CaptureFilter()
        all.vip = TestVips.web4
        let slot = try #require(try balancer.startCapture(all))
        _ = try balancer.run(Self.frame(.tcp, "198.18.1.2", 41_000, "198.18.100.1", 80))
        #expect(records.wait(for: 1).count == 1)
        try balancer.captures.stop(slot)
        _ = try balancer.run(Self.frame(.tcp, "198.18.1.2", 41_001, "198.18.100.1", 80))
        #expect(records.wait(for: 2, timeout: 0.5).count == 1, "a stopped capture records nothing more")
    }

    @Test func eachSlotGetsExactlyWhatItsFilterSelects() throws {
        let balancer = try makeBalancer(mtu: 1280)
        let records = try Records(balancer)
        defer { records.stop() }
        let names = balancer.captureNames()
        var web = CaptureFilter()
        web.vip = TestVips.web4
        web.direction = .both
        var notVip = CaptureFilter()
        notVip.outcomes = [.passNotVip]
        var drops = CaptureFilter()
        drops.outcomes = CaptureFilter.outcomes(named: "drop")!
        var icmp6 = CaptureFilter()
        icmp6.packetProtocol = .icmp
        icmp6.family = .ipv6
        let webSlot = try #require(try balancer.startCapture(web))
        let notVipSlot = try #require(try balancer.startCapture(notVip))
        let dropSlot = try #require(try balancer.startCapture(drops))
        let icmpSlot = try #require(try balancer.startCapture(icmp6))
        var fifth = CaptureFilter()
        fifth.vip = TestVips.dns4
        #expect(try balancer.startCapture(fifth) == nil, "\(CaptureSlots.count) slots: a fifth capture is refused")

        let toWeb = Self.frame(.tcp, "198.18.1.2", 40_001, "198.18.100.1", 80)
        let toDns = Self.frame(.udp, "198.18.1.2", 40_002, "198.18.100.1", 53)
        let toNobody = Self.frame(.udp, "198.18.1.2", 40_003, "198.18.9.9", 53)
        let tooBig = Self.frame(.tcp, "198.18.1.2", 40_004, "198.18.100.1", 80, payload: [UInt8](repeating: 7, count: 1250))
        let echo6 = PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeIPv6, payload: PacketBuilder.ipv6(
            source: ip("fd50:0:1::2"), destination: ip("fd50:0:9::9"), nextHeader: 58, payload: [128, 0, 0, 0, 0, 1, 0, 1]))
        let webRun = try balancer.run(toWeb)
        #expect(webRun.action == .tx)
        #expect(try balancer.run(toDns).action == .tx)
        #expect(try balancer.run(toNobody).action == .pass)
        _ = try balancer.run(tooBig)  // dropped, or answered with ICMP "fragmentation needed" (bpf/lib/icmp.h)
        #expect(try balancer.run(echo6).action == .pass)

        let all = records.wait(for: 5)
        func taken(by slot: Int) -> [CapturedPacket] { all.filter { $0.slots & (1 << UInt32(slot)) != 0 } }

        // The web VIP's capture: the SYN as received and as sent, and the too-big SYN as received (dropped: never sent).
        let web4 = taken(by: webSlot)
        #expect(web4.count == 3, "\(web4.map { ($0.outcome?.name ?? "?", $0.direction) })")
        let received = try #require(web4.first { $0.direction == .received && $0.outcome == .forward })
        #expect(received.bytes == toWeb && received.length == toWeb.count)
        #expect(received.vipIndex.flatMap { names.vips[$0] } == TestVips.web4)
        let real = try balancer.explain(Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: 40_001, destination: ip("198.18.100.1"),
                                             destinationPort: 80)).real
        #expect(received.realId.flatMap { names.reals[$0] } == real)
        let sent = try #require(web4.first { $0.direction == .sent })
        #expect(sent.outcome == .forward && sent.length == webRun.packet.count && sent.bytes == Array(webRun.packet.prefix(256)))
        #expect(sent.realId == received.realId && sent.monotonicNanoseconds == received.monotonicNanoseconds)
        let big = try #require(web4.first { $0.outcome == .dropTooBig })
        #expect(big.direction == .received && big.length == tooBig.count && big.bytes == Array(tooBig.prefix(256)))

        #expect(taken(by: notVipSlot).map(\.bytes) == [toNobody])
        #expect(taken(by: notVipSlot).first?.vipIndex == nil && taken(by: notVipSlot).first?.realId == nil)
        #expect(taken(by: dropSlot).map(\.outcome) == [.dropTooBig])
        #expect(taken(by: icmpSlot).map(\.bytes) == [echo6])
        #expect(taken(by: icmpSlot).first?.outcome != nil)
        #expect(all.count == 5, "one record per copy: the too-big SYN is one record for two slots")
        #expect(try balancer.captures.counts(webSlot) == CaptureSlots.Counts(matched: 2, recorded: 3, lost: 0))
    }

    @Test func oneInNSamplingRecordsEveryNthMatchingPacket() throws {
        let balancer = try makeBalancer()
        let records = try Records(balancer)
        defer { records.stop() }
        var sampled = CaptureFilter()
        sampled.outcomes = [.passNotVip]
        sampled.sampleEvery = 4
        let slot = try #require(try balancer.startCapture(sampled))
        // One test run repeats on one CPU (sampling counts per CPU); a passed packet is
        // not changed, so every repetition sees the same packet.
        let toNobody = Self.frame(.udp, "198.18.1.2", 42_000, "198.18.9.9", 53)
        var malformed = Self.frame(.udp, "198.18.1.2", 42_000, "198.18.100.1", 53)
        malformed[17] &+= 100  // IPv4 total length past the frame: dropped, not matched
        #expect(try balancer.program.testRun(packet: toNobody, repetitions: 40).returnValue == XDPAction.pass.rawValue)
        #expect(try balancer.program.testRun(packet: malformed, repetitions: 40).returnValue == XDPAction.drop.rawValue)
        let got = records.wait(for: 10)
        #expect(try balancer.captures.counts(slot) == CaptureSlots.Counts(matched: 40, recorded: 10, lost: 0))
        #expect(got.count == 10 && got.allSatisfy { $0.bytes == toNobody && $0.outcome == .passNotVip })
    }

    @Test func aFullRingIsCountedAsLost() throws {
        let balancer = try makeBalancer()
        var everything = CaptureFilter()
        everything.outcomes = [.passNotVip]
        let slot = try #require(try balancer.startCapture(everything))
        // No reader: the 2 MiB ring holds about 7,000 records.
        let frame = Self.frame(.udp, "198.18.1.2", 43_000, "198.18.9.9", 53)
        #expect(try balancer.program.testRun(packet: frame, repetitions: 10_000).returnValue == XDPAction.pass.rawValue)
        let counts = try balancer.captures.counts(slot)
        #expect(counts.matched == 10_000)
        #expect(counts.recorded + counts.lost == 10_000)
        #expect(counts.lost > 1_000 && counts.recorded > 5_000, "\(counts)")
        let stats = try balancer.stats()
        #expect(stats[.passNotVip] == 10_000, "losing records never changes what happens to the packet")
    }
}
