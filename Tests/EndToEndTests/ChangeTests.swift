import Foundation
import Petrel
import Testing

extension EndToEnd {
    /// Changes made through the library while held connections are open: what
    /// happens to established flows, and where new ones go.
    @Suite("End to end: changes under open connections", .serialized)
    struct ChangeTests {
        static let service = Service.tcp4
        static let held = 60
        static let fresh = 150

        /// Holds `held` connections, applies `change` after the first rounds, finishes
        /// the rounds, then opens `fresh` new connections. Returns both reports.
        func holdChangeAndReconnect(weights: [UInt32], change: (TestNetwork) throws -> Void) throws -> (HoldReport, ClientReport) {
            try withTestNetwork(vips: [Self.service.vip(weights: weights).withoutZeroWeightReals()]) { network in
                let holding = try network.startHolding(vip: Self.service.key.address, port: Self.service.clientPort, proto: .tcp,
                                                       connections: Self.held, rounds: 7, interval: 0.4)
                defer { holding.stop() }
                // Round 0 (connect and first answer) takes milliseconds here; change during the later rounds.
                Thread.sleep(forTimeInterval: 1.0)
                try change(network)
                let held = try network.finishHolding(holding)
                let fresh = try network.exchange(vip: Self.service.key.address, port: Self.service.clientPort, proto: .tcp,
                                                 count: Self.fresh, firstSourcePort: 30000)
                print("[e2e] held first round \(held.byReal.sorted { $0.key < $1.key }), new connections \(fresh.byReal.sorted { $0.key < $1.key })")
                return (held, fresh)
            }
        }

        /// The held connections whose first answer came from one of `reals`.
        func connections(of reals: Set<String>, in report: HoldReport) -> [HoldReport.Connection] {
            report.perConnection.filter { $0.reals.first.flatMap { $0 }.map(reals.contains) ?? false }
        }

        @Test("Removing a real keeps the established connections to the other reals")
        func removeReal() throws {
            let (held, fresh) = try holdChangeAndReconnect(weights: [1, 1, 1]) { network in
                var vip = Self.service.vip(weights: [1, 1, 1])
                vip.reals.removeAll { $0.address == Plan.reals4[2] }
                try network.balancer.upsert(vip)
            }
            let others = connections(of: ["real1", "real2"], in: held)
            #expect(held.perConnection.allSatisfy { $0.reals.first != nil }, "every connection answered in round 0")
            #expect(others.count + connections(of: ["real3"], in: held).count == Self.held)
            #expect(!others.isEmpty)
            #expect(others.allSatisfy { $0.sameReal }, "broken: \(others.filter { !$0.sameReal }.prefix(5))")
            let removed = connections(of: ["real3"], in: held)
            print("[e2e] removed real3: \(removed.filter { !$0.failedRounds.isEmpty }.count) of its \(removed.count) held connections failed afterwards (expected: moved to a real that resets them)")
            #expect(fresh.answered == Self.fresh && fresh.count("real3") == 0)
        }

        @Test("Draining a real (weight 0) keeps its connections; new connections avoid it")
        func drainReal() throws {
            let (held, fresh) = try holdChangeAndReconnect(weights: [1, 1, 1]) { network in
                try network.balancer.setWeight(0, real: Plan.reals4[1], vip: Self.service.key)
            }
            #expect(connections(of: ["real2"], in: held).count > 0, "real2 had connections to drain")
            #expect(held.allSameReal && !held.anyRoundFailed, "broken: \(held.perConnection.filter { !$0.sameReal }.prefix(5))")
            #expect(fresh.answered == Self.fresh)
            #expect(fresh.count("real2") == 0)
            #expect(fresh.count("real1") > 0 && fresh.count("real3") > 0)
        }

        @Test("Adding a real sends it new connections; established ones keep their real")
        func addReal() throws {
            let (held, fresh) = try holdChangeAndReconnect(weights: [1, 1, 0]) { network in
                try network.balancer.upsert(Self.service.vip(weights: [1, 1, 1]))
            }
            #expect(held.byReal["real3"] == nil, "real3 was not a real before")
            #expect(held.allSameReal && !held.anyRoundFailed, "broken: \(held.perConnection.filter { !$0.sameReal }.prefix(5))")
            #expect(fresh.answered == Self.fresh)
            // A third of the ring: 50 of 150 expected; well above zero however the hash falls.
            #expect(fresh.count("real3") >= Self.fresh / 6, "real3 answered \(fresh.count("real3")) of \(Self.fresh)")
        }
    }
}

extension Vip {
    /// The VIP without its weight-0 reals: here, a real not yet added.
    func withoutZeroWeightReals() -> Vip {
        var copy = self
        copy.reals = reals.filter { $0.weight > 0 }
        return copy
    }
}
