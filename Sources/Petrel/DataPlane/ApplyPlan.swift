import CPetrelABI

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
    /// The encapsulation of every real in the added and changed VIPs.
    private let encapsulationOf: [IPAddress: Encapsulation]
    /// Reals that stay but are now reached another way (IP-in-IP <-> GUE).
    private let reencapsulated: [(IPAddress, UInt32)]
    /// The trie entries each added or changed VIP must end up with.
    private let sourceRouteTargets: [VipKey: [IPPrefix: SourceRouteTarget]]
    init(desired list: [Vip], current: AppliedState, limits: DataPlaneLimits) throws(PetrelError) {
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
        let encapsulation = try ApplyPlan.checkEncapsulation(desired: desired, position: position, checked: added + changed,
                                                             removedOrChanged: changed + removed, current: current)
        try ApplyPlan.checkQuicCapacity(desired: desired, checked: added + changed, leaving: changed + removed, current: current)
        try ApplyPlan.checkSourceRouteCapacity(desired: desired, checked: added + changed, leaving: changed + removed, current: current)

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

        // Source routes name reals by id: a new real's id and its next generation.
        let newIds = Set(newReals.map(\.1))
        var sourceRouteTargets: [VipKey: [IPPrefix: SourceRouteTarget]] = [:]
        for key in added + changed {
            sourceRouteTargets[key] = ApplyPlan.sourceRouteTargets(of: desired[key]!, realIds: realIds) { id in
                newIds.contains(id) ? current.generation(ofReal: id) &+ 1 : current.generation(ofReal: id)
            }
        }
        self.sourceRouteTargets = sourceRouteTargets
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
        self.encapsulationOf = encapsulation
        self.reencapsulated = encapsulation.compactMap { address, wanted in
            guard let id = current.realIds[address], (current.realEncapsulation[address] ?? .ipip) != wanted else { return nil }
            return (address, id)
        }.sorted { $0.0 < $1.0 }
    }

    // MARK: GUE and QUIC checks

    /// A real is reached one way by every VIP that lists it (it is one entry in the
    /// reals map). Returns the encapsulation of every real in the checked VIPs.
    static func checkEncapsulation(desired: [VipKey: Vip], position: [VipKey: Int], checked: [VipKey],
                                   removedOrChanged: [VipKey], current: AppliedState) throws(PetrelError) -> [IPAddress: Encapsulation] {
        // The field is spelled out only for an error: an apply of 10,000 VIPs passes here a million times.
        func field(_ key: VipKey, _ r: Int) -> String { "vips[\(position[key]!)].reals[\(r)].encapsulation" }
        var chosen: [IPAddress: (Encapsulation, VipKey, Int)] = [:]
        for key in checked {
            for (r, real) in desired[key]!.reals.enumerated() {
                if let (other, otherKey, otherR) = chosen[real.address], other != real.encapsulation {
                    throw PetrelError(Real.encapsulationConflict(at: FieldPath([.key(field(key, r))]), value: real.encapsulation,
                                                                 other: other, otherField: field(otherKey, otherR)))
                }
                chosen[real.address] = (real.encapsulation, key, r)
            }
        }
        // VIPs left as they are keep their reals' current encapsulation.
        var leaving: [IPAddress: Int] = [:]
        for key in removedOrChanged { for real in current.vips[key]!.reals { leaving[real.address, default: 0] += 1 } }
        for (address, (wanted, key, r)) in chosen.sorted(by: { $0.key < $1.key }) {
            guard let now = current.realEncapsulation[address], now != wanted,
                  current.realUsers[address, default: 0] - leaving[address, default: 0] > 0 else { continue }
            // Name an unchanged VIP that lists the real, as the file or API gave it.
            let other = current.vips.values.lazy.filter { vip in desired[vip.key] == vip }
                .compactMap { vip in vip.reals.firstIndex { $0.address == address }.map { (vip.key, $0) } }.first
            let otherField = other.map { field($0.0, $0.1) } ?? "the other VIPs of \(address)"
            throw PetrelError(Real.encapsulationConflict(at: FieldPath([.key(field(key, r))]), value: wanted, other: now, otherField: otherField))
        }
        return chosen.mapValues(\.0)
    }

    /// The server ids of a VIP as the data plane should have them.
    static func quicServers(of vip: Vip) -> [UInt16: IPAddress] {
        guard vip.flags.contains(.quic) else { return [:] }
        var servers: [UInt16: IPAddress] = [:]
        for real in vip.reals { if let id = real.quicServerId { servers[id] = real.address } }
        return servers
    }

    static func checkQuicCapacity(desired: [VipKey: Vip], checked: [VipKey], leaving: [VipKey], current: AppliedState) throws(PetrelError) {
        var total = current.quicServers.values.reduce(0) { $0 + $1.count }
        for key in leaving { total -= current.quicServers[key]?.count ?? 0 }
        for key in checked { total += quicServers(of: desired[key]!).count }
        guard total <= Int(PETREL_MAX_QUIC_SERVERS) else {
            throw .limitExceeded(limit: "QUIC server ids (all VIPs)", requested: total, maximum: Int(PETREL_MAX_QUIC_SERVERS))
        }
    }

    static func checkSourceRouteCapacity(desired: [VipKey: Vip], checked: [VipKey], leaving: [VipKey], current: AppliedState) throws(PetrelError) {
        var total = current.vips.values.reduce(0) { $0 + $1.sourceRoutes.count }
        for key in leaving { total -= current.vips[key]?.sourceRoutes.count ?? 0 }
        for key in checked { total += desired[key]!.sourceRoutes.count }
        guard total <= SourceRoute.maxCount else {
            throw .limitExceeded(limit: "source routes (all VIPs)", requested: total, maximum: SourceRoute.maxCount)
        }
    }

    /// A VIP's source routes as its trie entries must hold them: each prefix's real
    /// id and generation, or out of service while the real has weight 0 (drained, or
    /// down by its health check: the ring places those clients meanwhile).
    static func sourceRouteTargets(of vip: Vip, realIds: [IPAddress: UInt32], generation: (UInt32) -> UInt32) -> [IPPrefix: SourceRouteTarget] {
        guard !vip.sourceRoutes.isEmpty else { return [:] }  // most VIPs: no table of their reals to build
        var weight: [IPAddress: UInt32] = [:]
        for real in vip.reals { weight[real.address] = real.weight }
        var targets: [IPPrefix: SourceRouteTarget] = [:]
        for route in vip.sourceRoutes {
            guard let id = realIds[route.real], weight[route.real, default: 0] > 0 else {
                targets[route.prefix] = .outOfService
                continue
            }
            targets[route.prefix] = SourceRouteTarget(realId: id, generation: generation(id))
        }
        return targets
    }

    /// The route writes that take a VIP's trie entries from `current` to `wanted`,
    /// split around the VIP's own entry so that each client address meets its old
    /// real or its new one, never a third: new and changed prefixes before the VIP
    /// entry, longest first; removed prefixes after it, shortest first. (A longer
    /// prefix written first hides the shorter one's change until it matters; a
    /// shorter one removed first is still hidden by the longer one.)
    static func sourceRouteWrites(vipIndex: UInt32, current: [IPPrefix: SourceRouteTarget], wanted: [IPPrefix: SourceRouteTarget])
        -> (before: [MapWrite], after: [MapWrite]) {
        let before = wanted.filter { current[$0.key] != $0.value }.sorted { ($0.key.length, $1.key) > ($1.key.length, $0.key) }
            .map { MapWrite.sourceRoute(vipIndex: vipIndex, prefix: $0.key, target: $0.value) }
        let after = current.keys.filter { wanted[$0] == nil }.sorted { ($0.length, $0) < ($1.length, $1) }
            .map { MapWrite.sourceRoute(vipIndex: vipIndex, prefix: $0, target: nil) }
        return (before, after)
    }

    // MARK: The writes, in order

    /// The writes that carry the data plane from `current` (the state this plan
    /// was made from) to the desired VIPs, so that every VIP switches from its old
    /// state to its new one in a single step: new reals first; each new ring into
    /// a free row; then the VIP entry, pointing at that row (one atomic map
    /// update); removed VIPs are unhooked; reals no VIP uses any more are
    /// released last. Rows are not cleared: nothing points at a released row, and
    /// the next VIP to use one writes it whole before pointing at it.
    func writes(from current: AppliedState) -> [MapWrite] {
        var writes: [MapWrite] = []
        // New VIP addresses enter the filter before their VIPs exist; removed ones
        // leave it after their VIPs are gone.
        let filter = AddressFilter(vips: desired.mapValues(\.flags))
        let filterDuring = current.addressFilter.union(filter)
        writes += current.addressFilter.writes(to: filterDuring).map { .addressFilter(slot: $0.slot, bits: $0.bits) }
        let addresses = Set(desired.keys.map(\.address))
        writes += addresses.subtracting(current.vipAddresses).sorted().map { .vipAddress($0, present: true) }
        for (address, id) in newReals {
            writes.append(.resetRealTraffic(id: id))
            writes.append(.real(id: id, address: address, generation: current.generation(ofReal: id) &+ 1))
            // Before any ring names the id: a GUE real is never reached by IP-in-IP.
            if let encapsulation = encapsulationOf[address], encapsulation != .ipip {
                writes.append(.realEncapsulation(id: id, encapsulation: encapsulation))
            }
        }
        // Same id and generation: the real's flows stay, only the way to it changes.
        for (address, id) in reencapsulated { writes.append(.realEncapsulation(id: id, encapsulation: encapsulationOf[address]!)) }
        let realIds = newReals.reduce(into: current.realIds) { $0[$1.0] = $1.1 }
        var routeDeletes: [MapWrite] = []
        for key in added + changed {
            let index = newIndices[key] ?? current.vipIndex[key]!
            if let row = newRows[key] { writes.append(.ringRow(row: row, slots: rings[key]!)) }
            var generation = current.generation(ofVipIndex: index)
            if newIndices[key] != nil {
                writes.append(.resetVipTraffic(index: index))
                generation &+= 1
                writes.append(.vipGeneration(index: index, generation: generation))
            }
            // Server ids name reals that exist by now; ids no longer listed go.
            let wanted = ApplyPlan.quicServers(of: desired[key]!)
            for (serverId, address) in wanted.sorted(by: { $0.key < $1.key }) {
                let id = realIds[address]!
                let generation = newReals.contains { $0.1 == id } ? current.generation(ofReal: id) &+ 1 : current.generation(ofReal: id)
                writes.append(.quicServer(vipIndex: index, serverId: serverId, realId: id, generation: generation))
            }
            for serverId in (current.quicServers[key] ?? [:]).keys.sorted() where wanted[serverId] == nil {
                writes.append(.quicServer(vipIndex: index, serverId: serverId, realId: nil, generation: 0))
            }
            // Routes of an added VIP are all written before its entry, removals of what
            // a killed apply left under its index too: nothing sees them before.
            let routes = ApplyPlan.sourceRouteWrites(vipIndex: index, current: current.sourceRoutes[index] ?? [:],
                                                     wanted: sourceRouteTargets[key]!)
            if newIndices[key] != nil { writes += routes.after }
            writes += routes.before
            if newIndices[key] == nil { routeDeletes += routes.after }
            var flags = desired[key]!.flags
            if !desired[key]!.sourceRoutes.isEmpty { flags.insert(.sourceRoutes) }
            writes.append(.vip(key, flags: flags, statsIndex: index, row: newRows[key] ?? current.ringRow[key]!, generation: generation))
        }
        // Nothing above took away what an old entry named (rows are switched, not
        // rewritten; reals are released last), so one bump covers every entry written.
        if !(added + changed).isEmpty { writes.append(.invalidateVipCaches) }
        writes += routeDeletes
        for key in removed {
            // Its known flows stop taking the fast path first; the removal then ends them.
            let index = current.vipIndex[key]!
            writes.append(.vipGeneration(index: index, generation: current.generation(ofVipIndex: index) &+ 1))
            writes.append(.removeVip(key))
            writes += ApplyPlan.sourceRouteWrites(vipIndex: index, current: current.sourceRoutes[index] ?? [:], wanted: [:]).after
            for serverId in (current.quicServers[key] ?? [:]).keys.sorted() {
                writes.append(.quicServer(vipIndex: current.vipIndex[key]!, serverId: serverId, realId: nil, generation: 0))
            }
        }
        if !removed.isEmpty { writes.append(.invalidateVipCaches) }  // before the reals they named are released
        writes += current.vipAddresses.subtracting(addresses).sorted().map { .vipAddress($0, present: false) }
        writes += filterDuring.writes(to: filter).map { .addressFilter(slot: $0.slot, bits: $0.bits) }
        for (_, id) in releasedReals {
            writes.append(.real(id: id, address: nil, generation: current.generation(ofReal: id)))
        }
        return writes
    }

    /// What the maps hold once every write of `writes(from: current)` succeeded.
    func applied(to current: AppliedState) -> AppliedState {
        var state = current
        for (address, id) in newReals {
            state.realGenerations[Int(id)] = current.generation(ofReal: id) &+ 1
            state.realIds[address] = id
            state.realAddresses[id] = address
        }
        for (address, encapsulation) in encapsulationOf { state.realEncapsulation[address] = encapsulation }
        for key in added + changed {
            let servers = ApplyPlan.quicServers(of: desired[key]!)
            state.quicServers[key] = servers.isEmpty ? nil : servers
            if let index = newIndices[key] {
                state.vipIndex[key] = index
                state.vipGenerations[Int(index)] = current.generation(ofVipIndex: index) &+ 1
            }
            let targets = sourceRouteTargets[key]!
            state.sourceRoutes[newIndices[key] ?? current.vipIndex[key]!] = targets.isEmpty ? nil : targets
            if let row = newRows[key] {
                if let oldRow = current.ringRow[key] { state.rows[oldRow] = nil }
                state.rows[row] = rings[key]!
                state.ringRow[key] = row
            }
        }
        for key in removed {
            if let index = current.vipIndex[key] { state.vipGenerations[Int(index)] = current.generation(ofVipIndex: index) &+ 1 }
            if let row = current.ringRow[key] { state.rows[row] = nil }
            state.vipIndex[key] = nil
            state.ringRow[key] = nil
            state.quicServers[key] = nil
            state.sourceRoutes[current.vipIndex[key]!] = nil
        }
        for (address, id) in releasedReals {
            state.realIds[address] = nil
            state.realAddresses[id] = nil
            state.realEncapsulation[address] = nil
        }
        state.vips = desired
        state.realUsers = realUsers
        state.addressFilter = AddressFilter(vips: desired.mapValues(\.flags))
        state.vipAddresses = Set(desired.keys.map(\.address))
        state.needsFullRewrite = false
        return state
    }

    /// What the change does, in the operator's counts.
    func report(from current: AppliedState) -> ApplyReport {
        var report = ApplyReport()
        report.vipsAdded = added.count
        // Changed as the data plane sees it: its flags or its ring. After adopting pinned maps
        // every VIP is rewritten (weights are not in the maps), and most are as they were.
        report.vipsChanged = changed.filter {
            newRows[$0] != nil || current.vips[$0]?.flags != desired[$0]!.flags
                || current.sourceRoutes[current.vipIndex[$0]!] ?? [:] != sourceRouteTargets[$0]!
        }.count
        report.vipsRemoved = removed.count
        report.realsAdded = newReals.count
        report.realsRemoved = releasedReals.count
        for (key, _) in newRows {
            let ring = rings[key]!
            report.ringSlotsChanged += current.ring(of: key).map { old in zip(old, ring).filter { $0 != $1 }.count } ?? ring.count
        }
        return report
    }
}
