import Foundation
import Petrel
import PetrelFuzz
import Testing

/// The packet fuzzer in its seeded quick mode, and the packets it once caught
/// as fixed regression cases.
@Suite("Packet fuzzing")
struct FuzzTests {
    @Test("200,000 random and mutated packets: every verdict, output and counter as the model says")
    func quickFuzz() throws {
        let fuzzer = try PacketFuzzer(seed: 20261125)
        let report = try fuzzer.run(packets: 200_000)
        print("fuzz: \(report.packets) packets in \(String(format: "%.1f", report.seconds)) s; outcomes " +
              report.kernel.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.name)=\($0.value)" }.joined(separator: " "))
        #expect(report.failures.isEmpty, "\(report.failures.map(\.description).joined(separator: "\n"))")
        // The mutations must really reach every outcome, or the fuzzer proves little.
        for reason in [StatReason.forward, .passNotIP, .passNotVip, .passFragment, .passUnsupported, .passICMP, .dropMalformed, .dropTooBig,
                       .replyEcho, .replyTooBig] {
            #expect((report.kernel[reason] ?? 0) > 100, "outcome \(reason.name) reached")
        }
        #expect(report.kernel[.rx] == 200_000)
        // ... and every GUE, QUIC and source-route path: the model checks their bytes and reals too.
        for reason in [StatReason.eventGUEForward, .eventQuicCIDRouted, .eventQuicLongHeader, .eventQuicCIDUnknown,
                       .eventQuicCIDZero, .eventQuicCIDMalformed, .eventSourceRouted] {
            #expect((report.kernel[reason] ?? 0) > 100, "event \(reason.name) reached")
        }
        // Replayed packets of earlier flows reach the connection tables and the flow cache.
        #expect((report.packetsByKind["replay"] ?? 0) > 30_000)
        #expect((report.kernel[.eventConnectionHit] ?? 0) > 1_000)
    }

    @Test("100,000 packets while the configuration switches every 2,000: no packet meets a VIP or real of the other one")
    func fuzzWhileApplying() throws {
        let fuzzer = try PacketFuzzer(seed: 20261204, applyEvery: 2_000)
        let report = try fuzzer.run(packets: 100_000)
        print("fuzz with applies: \(report.packets) packets, \(report.applies) switches in \(String(format: "%.1f", report.seconds)) s")
        #expect(report.failures.isEmpty, "\(report.failures.map(\.description).joined(separator: "\n"))")
        #expect(report.applies == 49)
        #expect((report.kernel[.forward] ?? 0) > 1_000 && (report.kernel[.passNotVip] ?? 0) > 1_000)
        #expect((report.kernel[.eventConnectionHit] ?? 0) > 500, "known flows crossed the switches")
    }
}
