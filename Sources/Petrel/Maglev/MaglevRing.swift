/// A Maglev lookup table (Eisenbud et al., NSDI 2016, section 3.4): a ring of
/// `size` slots, each naming the real that receives flows hashing to it.
///
/// The ring promises:
/// - determinism: the same set of reals and size give the same ring on every
///   instance, whatever order the reals were given in;
/// - balance: each real with weight > 0 owns a number of slots proportional to
///   its weight, to within one slot;
/// - minimal disruption: adding or removing one real moves few slots beyond the
///   ones that real gains or loses;
/// - draining: weight-0 reals own no slots, and a ring with no real of weight > 0
///   is all empty.
public struct MaglevRing: Sendable, Equatable {
    /// The number of slots; always a prime.
    public let size: Int
    /// The reals the ring was built from, in canonical order (sorted by address),
    /// weight-0 reals included.
    public let reals: [Real]
    /// Per slot, an index into `reals`, or -1 when the slot is empty.
    public let slots: [Int32]

    /// Builds the ring for `reals` with `size` slots.
    ///
    /// - Throws: `MaglevError.sizeNotPrime` unless `size` is prime,
    ///   `.duplicateReal` if two reals share an address, `.tooManyReals` if more
    ///   reals have weight > 0 than there are slots.
    public init(reals: [Real], size: Int) throws {
        guard Primes.isPrime(size) else { throw MaglevError.sizeNotPrime(size) }
        let sorted = reals.sorted { $0.address < $1.address }
        for (previous, current) in zip(sorted, sorted.dropFirst()) where previous.address == current.address {
            throw MaglevError.duplicateReal(current.address)
        }
        let serving = sorted.reduce(0) { $0 + ($1.weight > 0 ? 1 : 0) }
        guard serving <= size else { throw MaglevError.tooManyReals(reals: serving, size: size) }

        self.size = size
        self.reals = sorted
        self.slots = MaglevRing.populate(reals: sorted, size: size)
    }

    // MARK: - Queries

    /// The number of slots owned by the real at `address`; 0 if it is absent or drained.
    public func slotCount(of address: IPAddress) -> Int {
        guard let index = reals.firstIndex(where: { $0.address == address }) else { return 0 }
        let wanted = Int32(index)
        return slots.reduce(0) { $0 + ($1 == wanted ? 1 : 0) }
    }

    /// The fraction of the ring owned by the real at `address`, in 0...1.
    public func share(of address: IPAddress) -> Double {
        Double(slotCount(of: address)) / Double(size)
    }

    /// The address of the real owning `slot`; nil if the slot is empty or out of range.
    public func realAddress(atSlot slot: Int) -> IPAddress? {
        guard slots.indices.contains(slot) else { return nil }
        let index = slots[slot]
        return index < 0 ? nil : reals[Int(index)].address
    }

    /// Indices of slots whose real address differs between two rings of the same
    /// size (a slot turning empty, or filling, counts as a change), in ascending order.
    ///
    /// - Precondition: `old.size == new.size`; slots of rings of different sizes
    ///   do not correspond.
    public static func changedSlots(from old: MaglevRing, to new: MaglevRing) -> [Int] {
        precondition(old.size == new.size, "changedSlots compares rings of one size, got \(old.size) and \(new.size)")
        // Compare addresses, not indices: indices shift when a real is added or removed.
        return (0..<old.size).filter { old.realAddress(atSlot: $0) != new.realAddress(atSlot: $0) }
    }

    // MARK: - Building

    /// Seed of the hash that picks where a real's permutation starts.
    static let offsetSeed: UInt32 = 0x5bd1_e995
    /// Seed of the hash that picks a real's stride; must differ from `offsetSeed`
    /// so offset and skip are independent.
    static let skipSeed: UInt32 = 0x1b87_3593

    /// The (offset, skip) that define the permutation of `size` slots for `address`.
    /// `skip` lies in 1..<size, so with a prime size the walk visits every slot once.
    static func permutation(of address: IPAddress, size: Int) -> (offset: Int, skip: Int) {
        // The address's numeric words (wire order), so the ring is the same on every host.
        let w = address.words
        let h1 = JenkinsHash.hash4(w.0, w.1, w.2, w.3, seed: offsetSeed)
        let h2 = JenkinsHash.hash4(w.0, w.1, w.2, w.3, seed: skipSeed)
        return (Int(h1) % size, Int(h2) % (size - 1) + 1)
    }

    /// Fills the ring: reals with weight > 0 take turns claiming the next free slot
    /// of their own permutation until every slot is taken.
    ///
    /// Weights work by credit: each round every real earns its weight and claims a
    /// slot per `maxWeight` of credit, so claims (hence slots) are proportional to
    /// weight without the operator normalising anything.
    static func populate(reals: [Real], size: Int) -> [Int32] {
        var ring = [Int32](repeating: -1, count: size)
        let serving = ContiguousArray(reals.indices.filter { reals[$0].weight > 0 })
        guard !serving.isEmpty else { return ring }

        var owner = ContiguousArray<Int32>()
        var next = ContiguousArray<Int>()
        var skip = ContiguousArray<Int>()
        var weight = ContiguousArray<UInt64>()
        owner.reserveCapacity(serving.count)
        next.reserveCapacity(serving.count)
        skip.reserveCapacity(serving.count)
        weight.reserveCapacity(serving.count)
        for index in serving {
            let (offset, step) = permutation(of: reals[index].address, size: size)
            owner.append(Int32(index))
            next.append(offset)
            skip.append(step)
            weight.append(UInt64(reals[index].weight))
        }
        let maxWeight = weight.max()!
        // Credit stays below 2 * maxWeight, so UInt64 cannot overflow and each real
        // claims at most one slot per round.
        var credit = ContiguousArray<UInt64>(repeating: 0, count: serving.count)
        let count = serving.count

        ring.withUnsafeMutableBufferPointer { ring in
            owner.withUnsafeBufferPointer { owner in
            skip.withUnsafeBufferPointer { skip in
            weight.withUnsafeBufferPointer { weight in
            next.withUnsafeMutableBufferPointer { next in
            credit.withUnsafeMutableBufferPointer { credit in
                var filled = 0
                rounds: while true {
                    for i in 0..<count {
                        credit[i] &+= weight[i]
                        guard credit[i] >= maxWeight else { continue }
                        credit[i] &-= maxWeight
                        // Walk the permutation to this real's next free slot; it
                        // exists because the ring is not yet full and the walk
                        // covers every slot.
                        var slot = next[i]
                        let step = skip[i]
                        while ring[slot] >= 0 {
                            slot &+= step
                            if slot >= size { slot &-= size }
                        }
                        ring[slot] = owner[i]
                        slot &+= step
                        if slot >= size { slot &-= size }
                        next[i] = slot
                        filled &+= 1
                        if filled == size { break rounds }
                    }
                }
            }
            }
            }
            }
            }
        }
        return ring
    }
}

// MARK: - Errors

/// Why a Maglev ring could not be built.
public enum MaglevError: Error, Equatable, CustomStringConvertible {
    /// The ring size is not prime; skips only cover every slot when it is.
    case sizeNotPrime(Int)
    /// More reals with weight > 0 than slots: some would get no slot.
    case tooManyReals(reals: Int, size: Int)
    /// Two reals share this address.
    case duplicateReal(IPAddress)

    public var description: String {
        switch self {
        case .sizeNotPrime(let size):
            return "Maglev ring size \(size) is not prime; expected a prime such as 65537"
        case .tooManyReals(let reals, let size):
            return "\(reals) reals with weight > 0 do not fit a Maglev ring of \(size) slots; expected at most \(size)"
        case .duplicateReal(let address):
            return "real \(address) is listed more than once; expected each address once"
        }
    }
}

// MARK: - Primes

/// Primality, for choosing and checking Maglev ring sizes.
public enum Primes {
    /// True when `n` is a prime (so false for every n < 2).
    public static func isPrime(_ n: Int) -> Bool {
        if n < 2 { return false }
        if n < 4 { return true }
        if n % 2 == 0 || n % 3 == 0 { return false }
        // Every prime above 3 is 6k ± 1.
        var divisor = 5
        while divisor <= n / divisor {
            if n % divisor == 0 || n % (divisor + 2) == 0 { return false }
            divisor += 6
        }
        return true
    }
}
