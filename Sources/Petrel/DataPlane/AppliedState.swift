import CPetrelABI

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
    /// Per VIP stats index, the generation last written (map vip_generations).
    var vipGenerations: [UInt32]
    /// Set after adopting pinned maps or a failed write: the next apply recomputes every ring.
    var needsFullRewrite = false
    /// The VIP address filter as written to the kernel.
    var addressFilter = AddressFilter()
    /// The addresses in vip_address_set as written to the kernel.
    var vipAddresses: Set<IPAddress> = []
    /// How each real in use is reached (its petrel_real.flags).
    var realEncapsulation: [IPAddress: Encapsulation] = [:]
    /// Per `quic` VIP, its server ids as written to quic_servers.
    var quicServers: [VipKey: [UInt16: IPAddress]] = [:]
    /// Per VIP stats index, the source routes as written to source_routes. Kept by
    /// index, not VIP: entries a killed apply left under a free index are known,
    /// and cleared before the index is given to a new VIP.
    var sourceRoutes: [UInt32: [IPPrefix: SourceRouteTarget]] = [:]

    init(limits: DataPlaneLimits) {
        realGenerations = [UInt32](repeating: 0, count: limits.maxReals)
        vipGenerations = [UInt32](repeating: 0, count: limits.maxVips)
    }

    func address(ofReal id: UInt32) -> IPAddress? { realAddresses[id] }
    func generation(ofReal id: UInt32) -> UInt32 { Int(id) < realGenerations.count ? realGenerations[Int(id)] : 0 }
    func generation(ofVipIndex index: UInt32) -> UInt32 { Int(index) < vipGenerations.count ? vipGenerations[Int(index)] : 0 }

    /// The ring's real ids for a VIP as the kernel has them.
    func ring(of key: VipKey) -> [UInt32]? { ringRow[key].flatMap { rows[$0] } }

    /// Rebuilds the state from what the maps hold (left by an earlier process, or
    /// after a failed write). Weights are not stored in the maps, so each VIP's reals
    /// are read from its ring with weights proportional to their slots; the next
    /// apply rewrites them anyway.
    init(snapshot: DataPlaneSnapshot, limits: DataPlaneLimits) {
        var state = AppliedState(limits: limits)
        state.needsFullRewrite = true
        state.realGenerations = snapshot.generations
        for (index, generation) in snapshot.vipGenerations.enumerated() where index < state.vipGenerations.count {
            state.vipGenerations[index] = generation
        }
        for (id, address) in snapshot.reals {
            state.realIds[address] = id
            state.realAddresses[id] = address
            state.realEncapsulation[address] = snapshot.realEncapsulation[id] ?? .ipip
        }
        for (key, entry) in snapshot.vips {
            var slots: [UInt32: UInt32] = [:]
            for id in entry.slots where id != PETREL_NO_REAL { slots[id, default: 0] += 1 }
            // Server ids come from quic_servers, so they are known even for drained reals.
            let servers = snapshot.quicServers[entry.statsIndex] ?? [:]
            let serverIdOf = Dictionary(servers.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
            let reals = slots.compactMap { id, count in
                state.realAddresses[id].map {
                    Real(address: $0, weight: count, encapsulation: state.realEncapsulation[$0] ?? .ipip, quicServerId: serverIdOf[id])
                }
            }
            if !servers.isEmpty { state.quicServers[key] = servers.compactMapValues { state.realAddresses[$0] } }
            // Routes to a real out of service (id 0) do not say which real: they are
            // left out here, and the next apply (a full rewrite) writes them again.
            let routes = (snapshot.sourceRoutes[entry.statsIndex] ?? [:]).sorted { $0.key < $1.key }.compactMap { prefix, target in
                state.realAddresses[target.realId].map { SourceRoute(prefix: prefix, real: $0) }
            }
            state.vips[key] = Vip(key: key, flags: entry.flags.subtracting(.sourceRoutes), reals: reals.sorted { $0.address < $1.address },
                                  sourceRoutes: routes)
            for real in reals { state.realUsers[real.address, default: 0] += 1 }
            state.vipIndex[key] = entry.statsIndex
            state.ringRow[key] = entry.row
            state.rows[entry.row] = entry.slots
        }
        state.sourceRoutes = snapshot.sourceRoutes
        // The kernel's filter holds at least these bits (a VIP enters it before its
        // entry is written); extra bits a killed apply left behind cost a lookup only.
        state.addressFilter = AddressFilter(vips: state.vips.mapValues(\.flags))
        // Read, not derived: an address a killed apply left behind is removed by the next one.
        state.vipAddresses = snapshot.vipAddresses
        self = state
    }
}
