import Foundation
import Testing
@testable import Petrel
import PetrelTestSupport

@Suite struct MaglevTests {
    static let ringSize = 65537

    /// `count` reals at 10.x.y.z with the given weights (cycled if shorter).
    static func reals(_ count: Int, weights: [UInt32] = [1], firstHost: Int = 1) -> [Real] {
        (0..<count).map { i in
            let host = firstHost + i
            let address = IPAddress.v4(10, UInt8(host >> 16 & 0xff), UInt8(host >> 8 & 0xff), UInt8(host & 0xff))
            return Real(address: address, weight: weights[i % weights.count])
        }
    }

    /// Largest relative deviation of each real's share from its weight's share.
    static func worstWeightDeviation(_ ring: MaglevRing) -> Double {
        let total = Double(ring.reals.reduce(0) { $0 + UInt64($1.weight) })
        return ring.reals.map { real in
            let expected = Double(real.weight) / total
            return abs(ring.share(of: real.address) - expected) / expected
        }.max() ?? 0
    }

    /// Fraction of the ring that changes owner beyond the slots `moved` loses or gains.
    static func collateralFraction(from old: MaglevRing, to new: MaglevRing, moved: IPAddress) -> Double {
        let changed = MaglevRing.changedSlots(from: old, to: new)
        let own = Set((0..<old.size).filter {
            old.realAddress(atSlot: $0) == moved || new.realAddress(atSlot: $0) == moved
        })
        return Double(changed.filter { !own.contains($0) }.count) / Double(old.size)
    }

    // MARK: - Balance

    @Test func equalWeightsGetEqualShares() throws {
        let ring = try MaglevRing(reals: Self.reals(100), size: Self.ringSize)
        let fair = Double(Self.ringSize) / 100
        let ratios = ring.reals.map { Double(ring.slotCount(of: $0.address)) / fair }
        let (low, high) = (ratios.min()!, ratios.max()!)
        print("Maglev balance, 100 equal reals, ring \(Self.ringSize): share/fair min \(low), max \(high)")
        #expect(low >= 0.99 && high <= 1.01)
        #expect(!ring.slots.contains(-1), "every slot is owned when some real has weight > 0")
    }

    @Test(arguments: [
        [UInt32]([1, 2, 3, 4]),
        Array(UInt32(1)...10),
        [1, 1000],
        [7, 7, 7, 100, 3, 250],
    ])
    func sharesFollowWeights(weights: [UInt32]) throws {
        let ring = try MaglevRing(reals: Self.reals(weights.count, weights: weights), size: Self.ringSize)
        let worst = Self.worstWeightDeviation(ring)
        print("Maglev weights \(weights): worst relative deviation of share from weight ratio \(worst)")
        #expect(worst <= 0.01)
    }

    @Test func drainedRealOwnsNothingButStaysListed() throws {
        var reals = Self.reals(4)
        reals[2].weight = 0
        let ring = try MaglevRing(reals: reals, size: 251)
        #expect(ring.reals.count == 4)
        #expect(ring.slotCount(of: reals[2].address) == 0)
        #expect(ring.slotCount(of: reals[0].address) + ring.slotCount(of: reals[1].address)
                + ring.slotCount(of: reals[3].address) == 251)
    }

    // MARK: - Disruption

    @Test(arguments: [10, 100])
    func removingOneRealMovesLittleElse(count: Int) throws {
        let all = Self.reals(count)
        let old = try MaglevRing(reals: all, size: Self.ringSize)
        // Try several victims; the bound must hold for each.
        let victims = Array(stride(from: 0, to: count, by: max(1, count / 10)))
        var worst = 0.0
        for victim in victims {
            var remaining = all
            let removed = remaining.remove(at: victim)
            let new = try MaglevRing(reals: remaining, size: Self.ringSize)
            #expect(new.slotCount(of: removed.address) == 0)
            worst = max(worst, Self.collateralFraction(from: old, to: new, moved: removed.address))
        }
        print("Maglev remove 1 of \(count): worst collateral fraction \(worst) (bound \(1.1 / Double(count)))")
        #expect(worst <= 1.1 / Double(count))
    }

    @Test(arguments: [10, 100])
    func addingOneRealMovesLittleElse(count: Int) throws {
        let all = Self.reals(count)
        let old = try MaglevRing(reals: all, size: Self.ringSize)
        let added = Self.reals(1, firstHost: 5000)[0]
        let new = try MaglevRing(reals: all + [added], size: Self.ringSize)
        let gained = Double(new.slotCount(of: added.address)) / Double(Self.ringSize)
        let collateral = Self.collateralFraction(from: old, to: new, moved: added.address)
        print("Maglev add 1 to \(count): newcomer share \(gained), collateral fraction \(collateral) (bound \(1.1 / Double(count)))")
        #expect(collateral <= 1.1 / Double(count))
    }

    @Test func removingTheLastRealEmptiesTheRing() throws {
        let one = try MaglevRing(reals: Self.reals(1), size: 13)
        #expect(!one.slots.contains(-1))
        let none = try MaglevRing(reals: [], size: 13)
        #expect(none.slots == Array(repeating: -1, count: 13))
        #expect(MaglevRing.changedSlots(from: one, to: none) == Array(0..<13))
    }

    // MARK: - Determinism and validation

    @Test func inputOrderDoesNotMatter() throws {
        let reals = Self.reals(50, weights: [1, 2, 3])
            + [Real(address: IPAddress("2001:db8::1")!, weight: 2), Real(address: IPAddress("2001:db8::2")!, weight: 0)]
        let reference = try MaglevRing(reals: reals, size: 4099)
        var rng = SeededGenerator(seed: 42)
        for _ in 0..<5 {
            #expect(try MaglevRing(reals: reals.shuffled(using: &rng), size: 4099) == reference)
        }
        #expect(reference.reals.map(\.address) == reals.map(\.address).sorted())
    }

    @Test func duplicateAddressIsRejected() {
        let reals = Self.reals(3) + [Real(address: .v4(10, 0, 0, 2), weight: 5)]
        #expect(throws: MaglevError.duplicateReal(.v4(10, 0, 0, 2))) {
            try MaglevRing(reals: reals, size: 251)
        }
    }

    @Test(arguments: [0, 1, 4, 65536, 65535, -7])
    func nonPrimeSizeIsRejected(size: Int) {
        #expect(throws: MaglevError.sizeNotPrime(size)) { try MaglevRing(reals: Self.reals(2), size: size) }
    }

    @Test func tooManyServingRealsIsRejected() throws {
        #expect(throws: MaglevError.tooManyReals(reals: 5, size: 3)) { try MaglevRing(reals: Self.reals(5), size: 3) }
        // Drained reals take no slot, so they do not count against the size.
        var reals = Self.reals(5)
        reals[0].weight = 0
        reals[1].weight = 0
        let ring = try MaglevRing(reals: reals, size: 3)
        #expect(Set(ring.slots) == [2, 3, 4])
    }

    @Test func allDrainedOrNoRealsGivesAnEmptyRing() throws {
        let drained = try MaglevRing(reals: Self.reals(8, weights: [0]), size: 251)
        #expect(drained.slots == Array(repeating: -1, count: 251))
        #expect(drained.realAddress(atSlot: 0) == nil)
        let empty = try MaglevRing(reals: [], size: 251)
        #expect(empty.slots == Array(repeating: -1, count: 251))
        #expect(empty.share(of: .v4(10, 0, 0, 1)) == 0)
    }

    @Test func changedSlotsComparesAddressesSlotBySlot() throws {
        let old = try MaglevRing(reals: Self.reals(5), size: 1009)
        #expect(MaglevRing.changedSlots(from: old, to: old).isEmpty)
        // Removing the first real shifts every index, so an index comparison would be wrong.
        let new = try MaglevRing(reals: Array(Self.reals(5).dropFirst()), size: 1009)
        let expected = (0..<1009).filter { slot in
            let before = old.reals[Int(old.slots[slot])].address
            let after = new.reals[Int(new.slots[slot])].address
            return before != after
        }
        #expect(MaglevRing.changedSlots(from: old, to: new) == expected)
        #expect(expected.count >= old.slotCount(of: .v4(10, 0, 0, 1)))
    }

    @Test func queriesAgreeWithSlots() throws {
        let ring = try MaglevRing(reals: Self.reals(3, weights: [1, 2, 3]), size: 101)
        #expect(ring.realAddress(atSlot: -1) == nil)
        #expect(ring.realAddress(atSlot: 101) == nil)
        #expect(ring.realAddress(atSlot: 0) == ring.reals[Int(ring.slots[0])].address)
        #expect(ring.reals.map { ring.slotCount(of: $0.address) }.reduce(0, +) == 101)
        #expect(ring.slotCount(of: .v4(192, 0, 2, 1)) == 0)
    }

    @Test func mixedFamiliesFillTheRing() throws {
        let reals = [Real(address: IPAddress("2001:db8::10")!), Real(address: IPAddress("192.0.2.1")!),
                     Real(address: IPAddress("2001:db8::20")!)]
        let ring = try MaglevRing(reals: reals, size: 65537)
        #expect(ring.reals.first?.address == IPAddress("192.0.2.1"))
        for real in reals { #expect(abs(ring.share(of: real.address) - 1.0 / 3) < 0.001) }
    }

    // MARK: - Building blocks

    @Test func wordsPutIPv4InWordZero() {
        let v4 = IPAddress.v4(192, 0, 2, 1).words
        #expect([v4.0, v4.1, v4.2, v4.3] == [0xc000_0201, 0, 0, 0])
        let v6 = IPAddress("2001:db8::1")!.words
        #expect([v6.0, v6.1, v6.2, v6.3] == [0x2001_0db8, 0, 0, 1])
    }

    @Test func permutationSkipNeverZero() {
        for real in Self.reals(200) {
            let (offset, skip) = MaglevRing.permutation(of: real.address, size: 7)
            #expect((0..<7).contains(offset) && (1..<7).contains(skip))
        }
    }

    @Test func primesMatchASieve() {
        var sieve = [Bool](repeating: true, count: 2000)
        sieve[0] = false
        sieve[1] = false
        for i in 2..<2000 where sieve[i] {
            for multiple in stride(from: i * i, to: 2000, by: i) { sieve[multiple] = false }
        }
        for n in 0..<2000 { #expect(Primes.isPrime(n) == sieve[n], "n = \(n)") }
        #expect(Primes.isPrime(65537) && Primes.isPrime(2_147_483_647) && !Primes.isPrime(65539 * 65537))
    }
}
