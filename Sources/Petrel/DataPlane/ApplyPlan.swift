import CPetrelABI
import PetrelBPF

/// What the control plane believes is in the maps: VIP entries, ring rows and real ids.
struct AppliedState {
    var vips: [VipKey: Vip] = [:]
    /// Per VIP, its entry in vip_stats (fixed for the VIP's life).
    var vipIndex: [VipKey: UInt32] = [:]
    /// Per VIP, the ring row it points at now.
    var ringRow: [VipKey: UInt32] = [:]
    /// Per ring row in use, the real ids as written to the kernel.
    var rows: [UInt32: [UInt32]] = [:]
    var realIds: [IPAddress: UInt32] = [:]
    var realAddresses: [UInt32: IPAddress] = [:]
    /// How many VIPs list each real: a real is released when no VIP does.
    var realUsers: [IPAddress: Int] = [:]
    /// Per real id, the generation last written (bumped on reuse).
    var realGenerations: [UInt32]
    /// Set after adopting pinned maps or a failed write: the next apply recomputes every ring.
    var needsFullRewrite = false

    init(limits: DataPlaneLimits) {
        realGenerations = [UInt32](repeating: 0, count: limits.maxReals)
    }

    func address(ofReal id: UInt32) -> IPAddress? { realAddresses[id] }
    func generation(ofReal id: UInt32) -> UInt32 { Int(id) < realGenerations.count ? realGenerations[Int(id)] : 0 }

    /// The ring's real ids for a VIP as the kernel has them.
    func ring(of key: VipKey) -> [UInt32]? { ringRow[key].flatMap { rows[$0] } }

    /// Rebuilds the state from the maps (left by an earlier process, or after a
    /// failed write). Weights are not stored in the maps, so each VIP's reals are
    /// read from its ring with weights proportional to their slots; the next apply
    /// rewrites them anyway.
    static func read(from maps: BalancerMaps, limits: DataPlaneLimits) throws(PetrelError) -> AppliedState {
        let snapshot = try DataPlaneSnapshot.read(from: maps, limits: limits)
        var state = AppliedState(limits: limits)
        state.needsFullRewrite = true
        state.realGenerations = snapshot.generations
        for (id, address) in snapshot.reals {
            state.realIds[address] = id
            state.realAddresses[id] = address
        }
        for (key, entry) in snapshot.vips {
            var slots: [UInt32: UInt32] = [:]
            for id in entry.slots where id != PETREL_NO_REAL { slots[id, default: 0] += 1 }
            let reals = slots.compactMap { id, count in state.realAddresses[id].map { Real(address: $0, weight: count) } }
            state.vips[key] = Vip(key: key, flags: entry.flags, reals: reals.sorted { $0.address < $1.address })
            for real in reals { state.realUsers[real.address, default: 0] += 1 }
            state.vipIndex[key] = entry.statsIndex
            state.ringRow[key] = entry.row
            state.rows[entry.row] = entry.slots
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
    private let realUsers: [IPAddress: Int]
    /// Stats entries for added VIPs.
    private let newIndices: [VipKey: UInt32]
    /// The ring each added or changed VIP must end up with.
    private let rings: [VipKey: [UInt32]]
    /// Free rows the changed rings are written to, by VIP.
    private let newRows: [VipKey: UInt32]
    private let limits: DataPlaneLimits

    init(desired list: [Vip], current: AppliedState, limits: DataPlaneLimits) throws(PetrelError) {
        self.limits = limits
        var desired: [VipKey: Vip] = [:]
        var position: [VipKey: Int] = [:]
        desired.reserveCapacity(list.count)
        for (i, vip) in list.enumerated() {
            if let issue = Vip.duplicate(vip.key, at: ["vips", .index(i)], first: &position, index: i, list: ["vips"]) {
                throw PetrelError(issue)
            }
            desired[vip.key] = vip
        }
        guard desired.count <= limits.maxVips else {
            throw .limitExceeded(limit: "max_vips", requested: desired.count, maximum: limits.maxVips)
        }
        // Only what differs from the current state needs checking and computing, so
        // a small change to a large configuration stays cheap.
        let added = desired.keys.filter { current.vips[$0] == nil }.sorted()
        let changed = desired.keys.filter { key in
            guard let old = current.vips[key] else { return false }
            return current.needsFullRewrite || old != desired[key]!
        }.sorted()
        let removed = current.vips.keys.filter { desired[$0] == nil }.sorted()
        for key in added + changed {
            if let issue = desired[key]!.validate(at: ["vips", .index(position[key]!)], ringSize: limits.ringSize).first {
                throw PetrelError(issue)
            }
        }

        var realUsers = current.realUsers
        for key in changed + removed { for real in current.vips[key]!.reals { realUsers[real.address]! -= 1 } }
        for key in added + changed { for real in desired[key]!.reals { realUsers[real.address, default: 0] += 1 } }
        realUsers = realUsers.filter { $0.value > 0 }
        guard realUsers.count <= limits.maxReals - 1 else {
            throw .limitExceeded(limit: "max_reals (distinct real addresses)", requested: realUsers.count, maximum: limits.maxReals - 1)
        }

        // Ids, stats entries and rows freed by this change are not reused by it:
        // until the change is written, the data plane may still use them.
        var freeRealIds = (1..<UInt32(limits.maxReals)).lazy.filter { current.realAddresses[$0] == nil }.makeIterator()
        var realIds = current.realIds
        var newReals: [(IPAddress, UInt32)] = []
        for address in realUsers.keys.filter({ realIds[$0] == nil }).sorted() {
            guard let id = freeRealIds.next() else {
                throw .limitExceeded(limit: "max_reals (ids still held by reals being removed)", requested: realUsers.count, maximum: limits.maxReals - 1)
            }
            realIds[address] = id
            newReals.append((address, id))
        }
        let usedIndices = Set(current.vipIndex.values)
        var freeIndices = (0..<UInt32(limits.maxVips)).lazy.filter { !usedIndices.contains($0) }.makeIterator()
        var newIndices: [VipKey: UInt32] = [:]
        for key in added {
            guard let index = freeIndices.next() else {
                throw .limitExceeded(limit: "max_vips (entries still held by VIPs being removed)", requested: desired.count, maximum: limits.maxVips)
            }
            newIndices[key] = index
        }
        // Many VIPs often share one pool of reals: build each distinct ring once.
        var ringCache: [[Real]: [UInt32]] = [:]
        var rings: [VipKey: [UInt32]] = [:]
        for key in added + changed {
            let reals = desired[key]!.reals.sorted { $0.address < $1.address }
            if let ring = ringCache[reals] {
                rings[key] = ring
                continue
            }
            let maglev: MaglevRing
            do {
                maglev = try MaglevRing(reals: reals, size: limits.ringSize)
            } catch {
                throw .invalid(field: "vips[\(position[key]!)].reals", value: "\(reals.count) reals", expected: "\(error)")
            }
            let ids = maglev.reals.map { realIds[$0.address]! }
            let ring = maglev.slots.map { $0 < 0 ? UInt32(PETREL_NO_REAL) : ids[Int($0)] }
            ringCache[reals] = ring
            rings[key] = ring
        }

        // A VIP whose ring changes gets a free row; it keeps its old row until the
        // switch. With two rows per VIP there is always one: rows in use never
        // outnumber VIPs, old ones plus new ones.
        let usedRows = Set(current.ringRow.values)
        var freeRows = (0..<UInt32(2 * limits.maxVips)).lazy.filter { !usedRows.contains($0) }.makeIterator()
        var newRows: [VipKey: UInt32] = [:]
        for key in added + changed where current.ring(of: key) != rings[key] {
            newRows[key] = freeRows.next()!
        }

        self.desired = desired
        self.added = added
        self.changed = changed
        self.removed = removed
        self.newReals = newReals
        self.releasedReals = current.realIds.filter { realUsers[$0.key] == nil }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        self.realUsers = realUsers
        self.newIndices = newIndices
        self.rings = rings
        self.newRows = newRows
    }

    /// Writes the plan so that every VIP switches from its old state to its new
    /// one in a single step: new reals first; each new ring into a free row; then
    /// the VIP entry, pointing at that row (one atomic map update); a removed VIP
    /// is unhooked first; old rows and reals are released last.
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
            var releasedRows: [UInt32] = []
            for key in added + changed {
                let vip = desired[key]!
                let index = newIndices[key] ?? state.vipIndex[key]!
                let oldRow = state.ringRow[key]
                var row = oldRow ?? 0
                if let newRow = newRows[key] {
                    let ring = rings[key]!
                    let slotsChanged = state.ring(of: key).map { old in zip(old, ring).filter { $0 != $1 }.count } ?? ring.count
                    try maps.ring.update(newRow, elements: ring)
                    state.rows[newRow] = ring
                    report.ringSlotsChanged += slotsChanged
                    row = newRow
                }
                var meta = petrel_vip_meta()
                meta.flags = vip.flags.rawValue
                meta.vip_index = index
                meta.ring_row = row
                if newIndices[key] != nil { try maps.vipStats.updatePerCPU(index, petrel_traffic()) }
                try maps.vips.update(key.abi, meta)
                state.vipIndex[key] = index
                state.ringRow[key] = row
                if let oldRow, oldRow != row { releasedRows.append(oldRow) }
                if newIndices[key] != nil { report.vipsAdded += 1 } else { report.vipsChanged += 1 }
            }
            for key in removed {
                try maps.vips.delete(key.abi)
                if let row = state.ringRow[key] { releasedRows.append(row) }
                state.vipIndex[key] = nil
                state.ringRow[key] = nil
                report.vipsRemoved += 1
            }
            // Released rows keep their old content: nothing points at them, and the
            // next VIP to use one writes it whole before pointing at it.
            for row in releasedRows { state.rows[row] = nil }
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
        state.realUsers = realUsers
        state.needsFullRewrite = false
        return report
    }
}
