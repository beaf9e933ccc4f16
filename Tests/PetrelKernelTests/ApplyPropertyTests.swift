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
            vips.append(Vip(key: key, flags: flags, reals: reals))
        }
        return vips
    }

    /// A change that must be refused: one broken VIP among good ones.
    func brokenEdit(of vips: [Vip], _ rng: inout SeededGenerator) -> [Vip] {
        var edited = vips + randomVips(&rng).filter { new in !vips.contains { $0.key == new.key } }
        let broken: Vip
        switch Int.random(in: 0...2, using: &rng) {
        case 0: broken = Vip(key: VipKey(address: .v6(high: 0xfd50_0909_0909_0909, low: 0x0909_0909_0909_0909), port: 1, proto: .tcp),
                             reals: [Real(address: .v4(198, 18, 3, 1))])
        case 1: broken = Vip(key: VipKey(address: .v4(198, 18, 101, 1), port: 1, proto: .tcp),
                             reals: [Real(address: .v4(198, 18, 3, 1), weight: 5_000_000)])
        default: broken = Vip(key: VipKey(address: .v4(198, 18, 101, 2), port: 1, proto: .tcp),
                              reals: [Real(address: .v4(198, 18, 3, 1)), Real(address: .v4(198, 18, 3, 1))])
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
                #expect(snapshot.vips[vip.key]?.flags == vip.flags)
            }
            let usedReals = Set(vips.flatMap { $0.reals.map(\.address) })
            #expect(Set(snapshot.reals.values) == usedReals, "unused reals are released")

            let before = snapshot
            #expect(throws: PetrelError.self) { try balancer.apply(brokenEdit(of: vips, &rng)) }
            #expect(try balancer.dataPlaneSnapshot() == before, "step \(step): a refused change wrote nothing")
        }
    }
}
