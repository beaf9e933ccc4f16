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
    }

    public var vips: [VipKey: VipEntry]
    /// Real id to address, for every id in use.
    public var reals: [UInt32: IPAddress]
    /// Generation of every real id slot, used or not.
    public var generations: [UInt32]
    /// How each real id in use is reached.
    public var realEncapsulation: [UInt32: Encapsulation] = [:]
    /// Per VIP stats index: QUIC server id -> real id (map quic_servers).
    public var quicServers: [UInt32: [UInt16: UInt32]] = [:]

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
                vips[key] = VipEntry(flags: VipFlags(rawValue: meta.flags), statsIndex: meta.vip_index, row: meta.ring_row, slots: slots)
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
            return DataPlaneSnapshot(vips: vips, reals: reals, generations: generations,
                                     realEncapsulation: encapsulation, quicServers: quicServers)
        }
    }
}
