import CPetrelABI
import PetrelBPF

extension Real {
    /// The largest weight accepted; weights are relative, so this only bounds arithmetic.
    public static let maxWeight: UInt32 = 1_000_000
}

/// What the control plane believes is in the maps: VIP rows and real ids.
struct AppliedState {
    var vips: [VipKey: Vip] = [:]
    var vipIndex: [VipKey: UInt32] = [:]
    var realIds: [IPAddress: UInt32] = [:]
    var realAddresses: [UInt32: IPAddress] = [:]
    /// Per VIP row index, the ring's real ids as written to the kernel.
    var rows: [UInt32: [UInt32]] = [:]
    /// Per real id, the generation last written (bumped on reuse).
    var realGenerations: [UInt32]
    /// Set after adopting pinned maps or a failed write: the next apply recomputes every ring.
    var needsFullRewrite = false

    init(limits: DataPlaneLimits) {
        realGenerations = [UInt32](repeating: 0, count: limits.maxReals)
    }

    func address(ofReal id: UInt32) -> IPAddress? { realAddresses[id] }
    func generation(ofReal id: UInt32) -> UInt32 { Int(id) < realGenerations.count ? realGenerations[Int(id)] : 0 }

    /// Rebuilds the state from maps left by an earlier process. Weights are not
    /// stored in the maps, so each VIP's reals are read from its ring with
    /// weights proportional to their slots; the next apply rewrites them anyway.
    static func read(from maps: BalancerMaps, limits: DataPlaneLimits) throws(PetrelError) -> AppliedState {
        var state = AppliedState(limits: limits)
        state.needsFullRewrite = true
        try kernel {
            for id in 1..<UInt32(limits.maxReals) {
                guard let real = try maps.reals.lookup(id, as: petrel_real.self) else { continue }
                state.realGenerations[Int(id)] = real.generation
                if let address = IPAddress(abiWords: real.addr_be, family: real.family) {
                    state.realIds[address] = id
                    state.realAddresses[id] = address
                }
            }
            for abiKey in try maps.vips.keys(as: petrel_vip_key.self) {
                guard let key = VipKey(abi: abiKey), let meta = try maps.vips.lookup(abiKey, as: petrel_vip_meta.self) else { continue }
                let base = Int(meta.vip_index) * limits.ringSize
                let row = try maps.ring.lookupArray(base..<base + limits.ringSize, as: UInt32.self)
                state.rows[meta.vip_index] = row
                var slots: [UInt32: UInt32] = [:]
                for id in row where id != PETREL_NO_REAL { slots[id, default: 0] += 1 }
                let reals = slots.compactMap { id, count in state.realAddresses[id].map { Real(address: $0, weight: count) } }
                state.vips[key] = Vip(key: key, flags: VipFlags(rawValue: meta.flags), reals: reals.sorted { $0.address < $1.address })
                state.vipIndex[key] = meta.vip_index
            }
        }
        return state
    }
}

/// A validated change from the current state to a desired list of VIPs, with
/// every ring computed, ready to be written.
struct ApplyPlan {
    private let desired: [VipKey: Vip]
    private let added: [VipKey]
    private let changed: [VipKey]
    private let removed: [VipKey]
    private let newReals: [(IPAddress, UInt32)]
    private let releasedReals: [(IPAddress, UInt32)]
    private let newIndices: [VipKey: UInt32]
    private let rows: [VipKey: [UInt32]]
    private let limits: DataPlaneLimits

    init(desired list: [Vip], current: AppliedState, limits: DataPlaneLimits) throws(PetrelError) {
        self.limits = limits
        var desired: [VipKey: Vip] = [:]
        var position: [VipKey: Int] = [:]
        for (i, vip) in list.enumerated() {
            if let first = position[vip.key] {
                throw .invalid(field: "vips[\(i)]", value: "\(vip.key)", expected: "must be unique (same VIP as vips[\(first)])")
            }
            try ApplyPlan.validate(vip, field: "vips[\(i)]")
            position[vip.key] = i
            desired[vip.key] = vip
        }
        guard desired.count <= limits.maxVips else {
            throw .limitExceeded(limit: "max_vips", requested: desired.count, maximum: limits.maxVips)
        }
        let neededReals = Set(desired.values.flatMap { $0.reals.map(\.address) })
        guard neededReals.count <= limits.maxReals - 1 else {
            throw .limitExceeded(limit: "max_reals (distinct real addresses)", requested: neededReals.count, maximum: limits.maxReals - 1)
        }

        // Ids and rows freed by this change are not reused by it: until the change
        // is written, the data plane may still use them for the old state.
        var freeRealIds = (1..<UInt32(limits.maxReals)).lazy.filter { current.realAddresses[$0] == nil }.makeIterator()
        var realIds = current.realIds
        var newReals: [(IPAddress, UInt32)] = []
        for address in neededReals.sorted() where realIds[address] == nil {
            guard let id = freeRealIds.next() else {
                throw .limitExceeded(limit: "max_reals (ids still held by reals being removed)", requested: neededReals.count, maximum: limits.maxReals - 1)
            }
            realIds[address] = id
            newReals.append((address, id))
        }
        let usedIndices = Set(current.vipIndex.values)
        var freeIndices = (0..<UInt32(limits.maxVips)).lazy.filter { !usedIndices.contains($0) }.makeIterator()
        var newIndices: [VipKey: UInt32] = [:]
        let added = desired.keys.filter { current.vips[$0] == nil }.sorted()
        for key in added {
            guard let index = freeIndices.next() else {
                throw .limitExceeded(limit: "max_vips (rows still held by VIPs being removed)", requested: desired.count, maximum: limits.maxVips)
            }
            newIndices[key] = index
        }
        let changed = desired.keys.filter { key in
            guard let old = current.vips[key] else { return false }
            return current.needsFullRewrite || old != desired[key]!
        }.sorted()

        // Many VIPs often share one pool of reals: build each distinct ring once.
        var ringCache: [[Real]: [UInt32]] = [:]
        var rows: [VipKey: [UInt32]] = [:]
        for key in added + changed {
            let reals = desired[key]!.reals.sorted { $0.address < $1.address }
            if let row = ringCache[reals] {
                rows[key] = row
                continue
            }
            let ring: MaglevRing
            do {
                ring = try MaglevRing(reals: reals, size: limits.ringSize)
            } catch {
                throw .invalid(field: "vips[\(position[key]!)].reals", value: "\(reals.count) reals", expected: "\(error)")
            }
            let ids = ring.reals.map { realIds[$0.address]! }
            let row = ring.slots.map { $0 < 0 ? UInt32(PETREL_NO_REAL) : ids[Int($0)] }
            ringCache[reals] = row
            rows[key] = row
        }

        self.desired = desired
        self.added = added
        self.changed = changed
        self.removed = current.vips.keys.filter { desired[$0] == nil }.sorted()
        self.newReals = newReals
        self.releasedReals = current.realIds.filter { !neededReals.contains($0.key) }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        self.newIndices = newIndices
        self.rows = rows
    }

    /// Checks one VIP on its own: flags, reals, families, weights.
    static func validate(_ vip: Vip, field: String) throws(PetrelError) {
        let unknown = vip.flags.rawValue & ~UInt32(PETREL_VIP_KNOWN_FLAGS)
        guard unknown == 0 else { throw .invalid(field: "\(field).flags", value: "0x\(String(unknown, radix: 16))", expected: "must be known flags") }
        var seen: [IPAddress: Int] = [:]
        for (r, real) in vip.reals.enumerated() {
            let realField = "\(field).reals[\(r)]"
            if let first = seen[real.address] {
                throw .invalid(field: "\(realField).address", value: "\(real.address)", expected: "must be unique in the VIP (same as reals[\(first)])")
            }
            seen[real.address] = r
            if vip.key.address.family == .ipv6 && real.address.family == .ipv4 {
                throw .invalid(field: "\(realField).address", value: "\(real.address)",
                               expected: "must be IPv6 for an IPv6 VIP (IPv6 cannot be carried in IPv4)")
            }
            guard real.weight <= Real.maxWeight else {
                throw .invalid(field: "\(realField).weight", value: "\(real.weight)", expected: "must be between 0 and \(Real.maxWeight)")
            }
        }
    }

    /// Writes the plan in an order that keeps every VIP on its old or its new
    /// state at every moment: new reals, then rings, then VIP entries; removals
    /// unhook the VIP before clearing its ring, and reals are released last.
    func write(to maps: BalancerMaps, state: inout AppliedState) throws(PetrelError) -> ApplyReport {
        var report = ApplyReport()
        // Until the last step succeeds, the next apply must not trust the state.
        state.needsFullRewrite = true
        try kernel {
            for (address, id) in newReals {
                var real = petrel_real()
                real.addr_be = address.abiWords
                real.family = address.abiFamily
                real.generation = state.generation(ofReal: id) &+ 1
                try maps.realStats.updatePerCPU(id, petrel_traffic())
                try maps.reals.update(id, real)
                state.realGenerations[Int(id)] = real.generation
                state.realIds[address] = id
                state.realAddresses[id] = address
                report.realsAdded += 1
            }
            for key in added {
                let index = newIndices[key]!
                report.ringSlotsWritten += try writeRow(rows[key]!, index: index, ring: maps.ring, state: &state)
                var meta = petrel_vip_meta()
                meta.flags = desired[key]!.flags.rawValue
                meta.vip_index = index
                try maps.vipStats.updatePerCPU(index, petrel_traffic())
                try maps.vips.update(key.abi, meta)
                state.vipIndex[key] = index
                report.vipsAdded += 1
            }
            for key in changed {
                let index = state.vipIndex[key]!
                report.ringSlotsWritten += try writeRow(rows[key]!, index: index, ring: maps.ring, state: &state)
                var meta = petrel_vip_meta()
                meta.flags = desired[key]!.flags.rawValue
                meta.vip_index = index
                try maps.vips.update(key.abi, meta)
                report.vipsChanged += 1
            }
            for key in removed {
                let index = state.vipIndex[key]!
                try maps.vips.delete(key.abi)
                report.ringSlotsWritten += try writeRow([UInt32](repeating: UInt32(PETREL_NO_REAL), count: limits.ringSize), index: index, ring: maps.ring, state: &state)
                state.rows[index] = nil
                state.vipIndex[key] = nil
                report.vipsRemoved += 1
            }
            for (address, id) in releasedReals {
                var real = petrel_real()
                real.generation = state.generation(ofReal: id)
                try maps.reals.update(id, real)
                state.realIds[address] = nil
                state.realAddresses[id] = nil
                report.realsRemoved += 1
            }
        }
        state.vips = desired
        state.needsFullRewrite = false
        return report
    }

    /// Writes the slots of one ring row that differ from what the kernel holds,
    /// in one batched system call; returns how many did.
    private func writeRow(_ row: [UInt32], index: UInt32, ring: BPFMap, state: inout AppliedState) throws -> Int {
        let base = Int(index) * limits.ringSize
        let current = state.rows[index] ?? [UInt32](repeating: UInt32(PETREL_NO_REAL), count: limits.ringSize)
        var keys: [UInt32] = []
        var values: [UInt32] = []
        for slot in 0..<row.count where current[slot] != row[slot] {
            keys.append(UInt32(base + slot))
            values.append(row[slot])
        }
        if !keys.isEmpty { try ring.updateBatch(keys: keys, values: values) }
        state.rows[index] = row
        return keys.count
    }
}
