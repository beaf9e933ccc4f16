import Foundation
import Petrel
import PetrelBPF
import PetrelTestSupport
import Testing

/// Several balancers behind ECMP, announced over BGP by BIRD (scripts/scale-out/):
/// flows spread over every instance, every instance sends a flow to the same real,
/// and losing, stopping or adding an instance breaks no connection.
extension EndToEnd {
    @Suite("Scale-out: balancers behind ECMP, announced over BGP", .serialized)
    struct ScaleOutTests {
        @Test("Flows spread over every balancer; every instance and every instance's program picks the same real for 10,000 flows")
        func spreadAndSameReal() throws {
            try withScaleOutNetwork { network in
                let before = try (1...network.balancers).map(network.forwarded)
                let report = try network.exchange(vip: ScaleOutNetwork.vip4, port: 80, proto: .tcp, count: 600)
                let report6 = try network.exchange(vip: ScaleOutNetwork.vip6, port: 80, proto: .tcp, count: 300)
                let after = try (1...network.balancers).map(network.forwarded)
                let grew = zip(before, after).map { $1 - $0 }
                print("[scale-out] \(report.answered + report6.answered)/\(report.sent + report6.sent) answered; forwarded per balancer: \(grew)")
                #expect(report.answered == 600 && report6.answered == 300, "failures: \(report.failed) + \(report6.failed)")
                for (i, packets) in grew.enumerated() {
                    #expect(packets >= 50, "balancer \(i + 1) forwarded only \(packets) packets: ECMP does not spread")
                }
                for i in 1...network.balancers {
                    let status = try #require(try network.status(i).bgp)
                    let established = status.sessions.filter { $0.established }.count
                    #expect(established == status.sessions.count, "lb\(i): \(status.sessions)")
                    #expect(status.addresses.map(\.state) == ["announced", "announced", "announced"])
                }

                // 10,000 random flows over the four services: explain on every instance,
                // then the same flow's first packet through every instance's attached program.
                var rng = SeededGenerator(seed: 13)
                let flows = (0..<10_000).map { _ in Self.randomFlow(using: &rng) }
                // The instances answer side by side (each request is one admin connection).
                let answers = ExplainAnswers(count: network.balancers)
                DispatchQueue.concurrentPerform(iterations: network.balancers) { n in
                    answers.set(n, Result { try flows.map { try network.explain($0, on: n + 1).real } })
                }
                let explained = try answers.results.map { try $0!.get() }
                var transmitted: [[String?]] = []
                for i in 1...network.balancers {
                    let program = try BPFProgram.loaded(id: try network.attachedProgramID(i))
                    transmitted.append(try flows.map { flow in
                        var frame = PacketBuilder.frame(for: flow)
                        frame.replaceSubrange(0..<6, with: network.mac(ofBalancer: i))
                        return Self.outerDestination(try program.testRun(packet: frame).packet)
                    })
                }
                var disagreements = 0
                for n in flows.indices {
                    let answers = explained.map { $0[n] } + transmitted.map { $0[n] }
                    if answers.contains(where: { $0 == nil || $0 != answers[0] }) {
                        disagreements += 1
                        if disagreements <= 5 { print("[scale-out] \(flows[n]): explain \(explained.map { $0[n] }), programs \(transmitted.map { $0[n] })") }
                    }
                }
                let reals = Set(explained[0].compactMap { $0 })
                print("[scale-out] 10,000 flows × \(network.balancers) instances × (explain, BPF_PROG_TEST_RUN): \(disagreements) disagreements; \(reals.count) reals used")
                #expect(disagreements == 0)
                #expect(reals.count == 6, "the flows should reach all six real addresses, got \(reals.sorted())")
            }
        }

        @Test("One balancer fails hard, one stops gracefully, both come back: every one of 250 open connections keeps working on its real")
        func failStopAndAddBack() throws {
            try withScaleOutNetwork { network in
                let vip = ScaleOutNetwork.vip4
                // 1. Hard failure: lb2's link goes down and petreld and BIRD are SIGKILLed.
                var held = try network.startHolding(vip: vip, connections: 250, rounds: 25, interval: 0.2)
                usleep(1_500_000)
                let retransmitted = try network.clientRetransmissions()
                let failedAt = Date()
                try network.balancer("fail", 2)
                let convergence = try network.waitForPaths(vip, 2, since: failedAt)
                var report = try network.finishHolding(held)
                let lost = try network.clientRetransmissions() - retransmitted
                print("[scale-out] hard failure of 1 of 3: \(report.connections - report.perConnection.filter { !$0.sameReal }.count)/\(report.connections) connections kept; "
                      + "router converged in \(Int(convergence * 1000)) ms; \(lost) client packets lost (TCP retransmissions)")
                Self.expectAllKept(report, "hard failure")

                // 2. Added back: the failed machine returns while connections are open.
                held = try network.startHolding(vip: vip, connections: 250, rounds: 20, interval: 0.2)
                usleep(1_000_000)
                try network.balancer("restore", 2)
                try network.balancer("wait", 2)
                try network.waitForPaths(vip, 3)
                report = try network.finishHolding(held)
                print("[scale-out] balancer added back: \(report.perConnection.filter(\.sameReal).count)/\(report.connections) connections kept")
                Self.expectAllKept(report, "added back")

                // 3. Graceful stop (SIGTERM: withdraw, drain 2 s, stop), then started again.
                held = try network.startHolding(vip: vip, connections: 250, rounds: 40, interval: 0.2)
                usleep(1_000_000)
                let stoppedAt = Date()
                let stopping = try Command.Running(["env", "PETREL_BIN=\(EndToEnd.DaemonTrafficTests.Daemon.binaries)",
                                                    Command.script("scale-out/balancer.sh"), "stop", network.prefix, "3"])
                // While it drains, petreld still answers and shows every address withdrawn.
                var draining = try network.status(3).bgp
                while draining?.draining != true, Date().timeIntervalSince(stoppedAt) < 1.5 {
                    usleep(20_000)
                    draining = try network.status(3).bgp
                }
                let drainingSeen = Date().timeIntervalSince(stoppedAt)
                let withdrawn = try network.waitForPaths(vip, 2, since: stoppedAt)
                try stopping.wait(timeout: 30)
                try network.balancer("start", 3)
                try network.balancer("wait", 3)
                try network.waitForPaths(vip, 3)
                report = try network.finishHolding(held)
                print("[scale-out] graceful stop and start of 1 of 3: \(report.perConnection.filter(\.sameReal).count)/\(report.connections) connections kept; "
                      + "draining shown \(Int(drainingSeen * 1000)) ms and routes withdrawn \(Int(withdrawn * 1000)) ms after SIGTERM was sent")
                let withdrawnWhileDraining = draining?.addresses.filter { $0.state == "withdrawn" && $0.reason == "stopping" }.count
                #expect(draining?.draining == true && withdrawnWhileDraining == 3,
                        "while draining, status should show every address withdrawn: \(String(describing: draining))")
                Self.expectAllKept(report, "graceful stop")
            }
        }

        @Test("What does not survive: a real removed between a connection's start and a balancer's failure")
        func realRemovedBeforeFailure() throws {
            try withScaleOutNetwork { network in
                let vip = ScaleOutNetwork.vip4
                let held = try network.startHolding(vip: vip, connections: 300, rounds: 25, interval: 0.2)
                usleep(1_000_000)
                // real3 leaves the VIP on every instance: each keeps its own connections on
                // real3 (its connection table), but the rings no longer know where they live.
                for i in 1...network.balancers {
                    let response = try network.send(i, "DELETE", "/v1/vips/tcp/198.18.100.1/80/reals/198.18.3.13")
                    #expect(response.status == 200, "lb\(i): \(String(decoding: response.body, as: UTF8.self))")
                }
                usleep(1_000_000)
                try network.balancer("fail", 1)
                try network.waitForPaths(vip, 2)
                let report = try network.finishHolding(held)

                // At risk: connections whose real is no longer the ring's choice.
                var atRisk = Set<Int>()
                for connection in report.perConnection {
                    guard let first = connection.reals.first ?? nil else { continue }
                    let flow = Flow(proto: .tcp, source: IPAddress("198.18.1.2")!, sourcePort: UInt16(connection.sourcePort),
                                    destination: vip, destinationPort: 80)
                    let ringReal = try network.explain(flow, on: 2).ringReal
                    if ringReal.flatMap({ Self.realName[$0] }) != first { atRisk.insert(connection.index) }
                }
                let broken = Set(report.perConnection.filter { !$0.sameReal }.map(\.index))
                print("[scale-out] real removed, then 1 of 3 balancers failed: \(broken.count)/\(report.connections) connections broken; "
                      + "\(atRisk.count) were at risk (their real no longer the ring's choice); "
                      + "\(report.connections - atRisk.count) others all kept: \(broken.isSubset(of: atRisk))")
                #expect(!broken.isEmpty, "some moved connections of the removed real should break")
                #expect(broken.isSubset(of: atRisk), "only connections whose ring choice changed may break: \(broken.subtracting(atRisk).sorted())")
            }
        }

        // MARK: Helpers

        /// Each instance's explain answers, filled from concurrent threads (@unchecked Sendable: `results` only under `lock`).
        final class ExplainAnswers: @unchecked Sendable {
            private let lock = NSLock()
            private(set) var results: [Result<[String?], Error>?]
            init(count: Int) { results = Array(repeating: nil, count: count) }
            func set(_ n: Int, _ result: Result<[String?], Error>) { lock.withLock { results[n] = result } }
        }

        static let realName = ["198.18.3.11": "real1", "198.18.3.12": "real2", "198.18.3.13": "real3"]

        static func expectAllKept(_ report: HoldReport, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
            let broken = report.perConnection.filter { !$0.sameReal }
            #expect(report.connections >= 200, sourceLocation: sourceLocation)
            #expect(broken.isEmpty, "\(what): \(broken.count) connections failed or changed real, e.g. \(broken.prefix(3).map { ($0.sourcePort, $0.reals, $0.failedRounds) })",
                    sourceLocation: sourceLocation)
        }

        /// A random flow to one of the scale-out network's services (config/demo.yaml's VIPs).
        static func randomFlow(using rng: inout SeededGenerator) -> Flow {
            let sport = UInt16.random(in: 1024...65535, using: &rng)
            let host = UInt8.random(in: 1...254, using: &rng)
            switch Int.random(in: 0..<4, using: &rng) {
            case 0:
                return Flow(proto: .tcp, source: .v4(198, 18, 1, host), sourcePort: sport, destination: ScaleOutNetwork.vip4, destinationPort: 80)
            case 1:
                return Flow(proto: .udp, source: .v4(198, 18, 1, host), sourcePort: sport, destination: ScaleOutNetwork.vip4, destinationPort: 53)
            case 2:
                return Flow(proto: .tcp, source: .v4(198, 18, 1, host), sourcePort: sport, destination: ScaleOutNetwork.vip4in6,
                            destinationPort: UInt16.random(in: 1...65535, using: &rng))
            default:
                let source = IPAddress(wireBytes: [0xfd, 0x50, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 9) + [host])!
                return Flow(proto: .tcp, source: source, sourcePort: sport, destination: ScaleOutNetwork.vip6, destinationPort: 80)
            }
        }

        /// The outer destination of an encapsulated frame: the real the program chose.
        static func outerDestination(_ frame: [UInt8]) -> String? {
            guard frame.count >= 54 else { return nil }
            switch UInt16(frame[12]) << 8 | UInt16(frame[13]) {
            case 0x0800: return IPAddress(wireBytes: frame[30..<34]).map { "\($0)" }
            case 0x86dd: return IPAddress(wireBytes: frame[38..<54]).map { "\($0)" }
            default: return nil
            }
        }
    }
}
