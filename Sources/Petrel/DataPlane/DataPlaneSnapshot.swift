import CPetrelABI
import PetrelBPF

/// What the kernel's maps hold right now, read from the maps themselves (not
/// from the control plane's memory): for checking that a change landed, or that
/// a refused one left every byte as it was.
public struct DataPlaneSnapshot: Equatable, Sendable {
    /// Per VIP: its flags, its stats entry, its current row in the ring map, and the row's real ids.
    public struct VipEntry: Equatable, Sendable {
        public var flags: VipFlags
        public var statsIndex: UInt32
        public var row: UInt32
        public var slots: [UInt32]
        /// The generation of its stats index when its entry was written.
        public var generation: UInt32 = 0
    }

    public var vips: [VipKey: VipEntry]
    /// Real id to address, for every id in use.
    public var reals: [UInt32: IPAddress]
    /// Generation of every real id slot, used or not.
    public var generations: [UInt32]
    /// Generation of every VIP stats index, used or not (map vip_generations).
    public var vipGenerations: [UInt32] = []
    /// How each real id in use is reached.
    public var realEncapsulation: [UInt32: Encapsulation] = [:]
    /// Per VIP stats index: QUIC server id -> real id (map quic_servers).
    public var quicServers: [UInt32: [UInt16: UInt32]] = [:]
    /// Per VIP stats index: each source route's prefix and what it names (map
    /// source_routes). Prefixes under an index no VIP uses read as IPv6.
    var sourceRoutes: [UInt32: [IPPrefix: SourceRouteTarget]] = [:]

    /// Per VIP: its source routes' prefixes and the real id each names (0: the real is out of service).
    public func sourceRouteIds(of key: VipKey) -> [IPPrefix: UInt32]? {
        vips[key].map { entry in (sourceRoutes[entry.statsIndex] ?? [:]).mapValues(\.realId) }
    }
    /// The addresses echo requests are answered for (map vip_address_set).
    public var vipAddresses: Set<IPAddress> = []

    /// The real addresses a VIP's ring sends new flows to, slot by slot (nil: empty slot or unknown id).
    public func ringAddresses(of key: VipKey) -> [IPAddress?]? {
        vips[key].map { entry in entry.slots.map { $0 == PETREL_NO_REAL ? nil : reals[$0] } }
    }
}

extension LoadBalancer {
    /// Reads every VIP, real and ring row in use from the kernel.
    public func dataPlaneSnapshot() throws(PetrelError) -> DataPlaneSnapshot {
        try DataPlaneSnapshot.read(from: maps, limits: limits)
    }
}

extension DataPlaneSnapshot {
    static func read(from maps: BalancerMaps, limits: DataPlaneLimits) throws(PetrelError) -> DataPlaneSnapshot {
        try kernel {
            var reals: [UInt32: IPAddress] = [:]
            var encapsulation: [UInt32: Encapsulation] = [:]
            var generations: [UInt32] = []
            for id in 0..<UInt32(limits.maxReals) {
                let real = try maps.reals.lookup(id, as: petrel_real.self) ?? petrel_real()
                generations.append(real.generation)
                if let address = IPAddress(abiWords: real.addr_be, family: real.family) {
                    reals[id] = address
                    encapsulation[id] = Encapsulation(realFlags: real.flags)
                }
            }
            var vips: [VipKey: VipEntry] = [:]
            func add(_ key: VipKey?, _ meta: petrel_vip_meta?) throws {
                guard let key, let meta else { return }
                let slots = try maps.ring.lookup(meta.ring_row, elementsOf: UInt32.self) ?? []
                vips[key] = VipEntry(flags: VipFlags(rawValue: meta.flags), statsIndex: meta.vip_index, row: meta.ring_row, slots: slots,
                                     generation: meta.generation)
            }
            for abiKey in try maps.vipsV4.keys(as: petrel_vip_key_v4.self) {
                try add(VipKey(abi: abiKey), try maps.vipsV4.lookup(abiKey, as: petrel_vip_meta.self))
            }
            for abiKey in try maps.vipsV6.keys(as: petrel_vip_key.self) {
                try add(VipKey(abi: abiKey), try maps.vipsV6.lookup(abiKey, as: petrel_vip_meta.self))
            }
            var quicServers: [UInt32: [UInt16: UInt32]] = [:]
            for key in try maps.quicServers.keys(as: petrel_quic_server_key.self) {
                guard let server = try maps.quicServers.lookup(key, as: petrel_quic_server.self) else { continue }
                quicServers[key.vip_index, default: [:]][UInt16(truncatingIfNeeded: key.server_id)] = server.real_id
            }
            // The trie's keys do not say the family: the VIP with that index does.
            var familyOf: [UInt32: AddressFamily] = [:]
            for (key, entry) in vips { familyOf[entry.statsIndex] = key.address.family }
            var sourceRoutes: [UInt32: [IPPrefix: SourceRouteTarget]] = [:]
            for key in try maps.sourceRoutes.keys(as: petrel_source_route_key.self) {
                guard let route = try maps.sourceRoutes.lookup(key, as: petrel_source_route.self),
                      let prefix = IPPrefix(abiSourceRouteKey: key, family: familyOf[key.vip_index] ?? .ipv6) else { continue }
                sourceRoutes[key.vip_index, default: [:]][prefix] = SourceRouteTarget(realId: route.real_id, generation: route.real_generation)
            }
            var addresses: Set<IPAddress> = []
            for key in try maps.vipAddressSet.keys(as: petrel_vip_address.self) {
                if let address = IPAddress(abiWords: key.addr_be, family: key.family) { addresses.insert(address) }
            }
            var vipGenerations: [UInt32] = []
            for index in 0..<UInt32(limits.maxVips) { vipGenerations.append(try maps.vipGenerations.lookup(index, as: UInt32.self) ?? 0) }
            return DataPlaneSnapshot(vips: vips, reals: reals, generations: generations, vipGenerations: vipGenerations,
                                     realEncapsulation: encapsulation, quicServers: quicServers, sourceRoutes: sourceRoutes, vipAddresses: addresses)
        }
    }
}
