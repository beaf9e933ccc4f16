import Foundation
import Petrel
import PetrelFuzz
import Testing
import PetrelTestSupport

/// Random configurations and random edits: what is applied is exactly what the
/// maps hold afterwards, and a refused edit leaves the maps byte for byte as
/// they were.
@Suite("Applying changes, property-tested against the kernel's maps")
struct ApplyPropertyTests {
    static let ringSize = 211

    func randomVips(_ rng: inout SeededGenerator) -> [Vip] {
        var keys = Set<VipKey>()
        var vips: [Vip] = []
        for _ in 0..<Int.random(in: 0...12, using: &rng) {
            let v6 = Bool.random(using: &rng)
            let address: IPAddress = v6 ? .v6(high: 0xfd50_0000_0100_0000, low: UInt64.random(in: 1...4, using: &rng))
                : .v4(198, 18, 100, UInt8.random(in: 1...4, using: &rng))
            let key = VipKey(address: address, port: [0, 80, 443, 53].randomElement(using: &rng)!, proto: Bool.random(using: &rng) ? .tcp : .udp)
            guard keys.insert(key).inserted else { continue }
            let realsV6 = v6 || Bool.random(using: &rng)
            let count = Int.random(in: 0...8, using: &rng)
            let reals = Set((0..<count).map { _ in UInt8.random(in: 1...40, using: &rng) }).sorted().map { host -> Real in
                let address: IPAddress = realsV6 ? .v6(high: 0xfd50_0000_0300_0000, low: UInt64(host)) : .v4(198, 18, 3, host)
                return Real(address: address, weight: UInt32.random(in: 0...5, using: &rng))
            }
            let flags = VipFlags(rawValue: UInt32.random(in: 0...7, using: &rng))
            // Source routes, nested and not, to random reals of the VIP (drained ones too).
            var routes: [SourceRoute] = []
            for length in [8, 16, 24, 32, 48, 64].shuffled(using: &rng).prefix(reals.isEmpty ? 0 : Int.random(in: 0...4, using: &rng)) {
                let prefix = v6 ? IPPrefix(address: .v6(high: 0xfd50_0000_0001_0000, low: 0), length: length + 64)
                    : IPPrefix(address: .v4(10, length >= 16 ? 1 : 0, 0, 0), length: min(length, 32))
                guard !routes.contains(where: { $0.prefix == prefix }) else { continue }
                routes.append(SourceRoute(prefix: prefix, real: reals.randomElement(using: &rng)!.address))
            }
            vips.append(Vip(key: key, flags: flags, reals: reals, sourceRoutes: routes))
        }
        return vips
    }

    /// A change that must be refused: one broken VIP among good ones.
    func brokenEdit(of vips: [Vip], _ rng: inout SeededGenerator) -> [Vip] {
        var edited = vips + randomVips(&rng).filter { new in !vips.contains { $0.key == new.key } }
        let broken: Vip
        switch Int.random(in: 0...3, using: &rng) {
        case 0: broken = Vip(key: VipKey(address: .v6(high: 0xfd50_0909_0909_0909, low: 0x0909_0909_0909_0909), port: 1, proto: .tcp),
                             reals: [Real(address: .v4(198, 18, 3, 1))])
        case 1: broken = Vip(key: VipKey(address: .v4(198, 18, 101, 1), port: 1, proto: .tcp),
                             reals: [Real(address: .v4(198, 18, 3, 1), weight: 5_000_000)])
        case 2: broken = Vip(key: VipKey(address: .v4(198, 18, 101, 2), port: 1, proto: .tcp),
                             reals: [Real(address: .v4(198, 18, 3, 1)), Real(address: .v4(198, 18, 3, 1))])
        default: broken = Vip(key: VipKey(address: .v4(198, 18, 101, 3), port: 1, proto: .tcp), reals: [Real(address: .v4(198, 18, 3, 1))],
                              sourceRoutes: [SourceRoute(prefix: IPPrefix("10.0.0.0/8")!, real: .v4(198, 18, 3, 2))])
        }
        edited.insert(broken, at: Int.random(in: 0...edited.count, using: &rng))
        return edited
    }

    @Test("apply then read back gives the applied state; refused edits change nothing", arguments: [1, 2, 3, 4, 5] as [UInt64])
    func applyReadBack(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let balancer = try LoadBalancer(limits: DataPlaneLimits(maxVips: 32, maxReals: 256, ringSize: Self.ringSize, connectionTableSize: 1024))
        for step in 0..<25 {
            let vips = randomVips(&rng)
            try balancer.apply(vips)
            let snapshot = try balancer.dataPlaneSnapshot()
            #expect(Set(snapshot.vips.keys) == Set(vips.map(\.key)), "step \(step)")
            for vip in vips {
                let expected = try MaglevRing(reals: vip.reals, size: Self.ringSize)
                let ring = try #require(snapshot.ringAddresses(of: vip.key))
                #expect(ring == (0..<Self.ringSize).map { expected.realAddress(atSlot: $0) }, "step \(step): ring of \(vip.key)")
                // The data plane's source-routes bit (0x10) is the planner's, set exactly when the VIP has routes.
                #expect(snapshot.vips[vip.key]?.flags == vip.flags.union(VipFlags(rawValue: vip.sourceRoutes.isEmpty ? 0 : 0x10)))
                let ids = Dictionary(uniqueKeysWithValues: snapshot.reals.map { ($0.value, $0.key) })
                let expectedRoutes = Dictionary(uniqueKeysWithValues: vip.sourceRoutes.map { route in
                    (route.prefix, vip.reals.first { $0.address == route.real }!.weight == 0 ? 0 : ids[route.real]!)
                })
                #expect(snapshot.sourceRouteIds(of: vip.key) == expectedRoutes, "step \(step): routes of \(vip.key), drained reals as 0")
            }
            let usedReals = Set(vips.flatMap { $0.reals.map(\.address) })
            #expect(Set(snapshot.reals.values) == usedReals, "unused reals are released")

            let before = snapshot
            #expect(throws: PetrelError.self) { try balancer.apply(brokenEdit(of: vips, &rng)) }
            #expect(try balancer.dataPlaneSnapshot() == before, "step \(step): a refused change wrote nothing")
        }
    }
}
