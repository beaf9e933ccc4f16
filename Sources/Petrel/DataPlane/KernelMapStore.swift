import CPetrelABI
import PetrelBPF

/// The executor of planned writes on the kernel's maps: each `MapWrite` becomes
/// one map update in the layouts of bpf/include/petrel_abi.h, nothing more.
final class KernelMapStore: MapStore {
    let maps: BalancerMaps

    init(maps: BalancerMaps) {
        self.maps = maps
    }

    func perform(_ write: MapWrite) throws(PetrelError) {
        try kernel {
            switch write {
            case let .real(id, address, generation):
                var real = petrel_real()
                if let address {
                    real.addr_be = address.abiWords
                    real.family = address.abiFamily
                }
                real.generation = generation
                try maps.reals.update(id, real)
            case let .resetRealTraffic(id):
                try maps.realStats.updatePerCPU(id, petrel_traffic())
            case let .ringRow(row, slots):
                try maps.ring.update(row, elements: slots)
            case let .resetVipTraffic(index):
                try maps.vipStats.updatePerCPU(index, petrel_traffic())
            case let .vip(key, flags, statsIndex, row, generation):
                var meta = petrel_vip_meta()
                meta.flags = flags.rawValue
                meta.vip_index = statsIndex
                meta.ring_row = row
                meta.generation = generation
                if key.address.family == .ipv4 {
                    try maps.vipsV4.update(key.abiV4, meta)
                } else {
                    try maps.vipsV6.update(key.abi, meta)
                }
            case let .removeVip(key):
                if key.address.family == .ipv4 {
                    try maps.vipsV4.delete(key.abiV4)
                } else {
                    try maps.vipsV6.delete(key.abi)
                }
            case .invalidateVipCaches:
                // Read back, not counted here: a process that adopted the maps goes on from its predecessor's epoch.
                let epoch = try maps.vipEpoch.lookup(UInt32(0), as: UInt64.self) ?? 0
                try maps.vipEpoch.update(UInt32(0), epoch &+ 1)
            case let .vipGeneration(index, generation):
                try maps.vipGenerations.update(index, generation)
            case let .addressFilter(slot, bits):
                try maps.vipAddresses.update(slot, bits)
            case let .vipAddress(address, present):
                var key = petrel_vip_address()
                key.addr_be = address.abiWords
                key.family = address.abiFamily
                if present { try maps.vipAddressSet.update(key, UInt32(1)) } else { _ = try maps.vipAddressSet.delete(key) }
            case let .realEncapsulation(id, encapsulation):
                var real = try maps.reals.lookup(id, as: petrel_real.self) ?? petrel_real()
                real.flags = encapsulation.realFlags
                try maps.reals.update(id, real)
            case let .quicServer(vipIndex, serverId, realId, generation):
                var key = petrel_quic_server_key()
                key.vip_index = vipIndex
                key.server_id = UInt32(serverId)
                if let realId {
                    var value = petrel_quic_server()
                    value.real_id = realId
                    value.real_generation = generation
                    try maps.quicServers.update(key, value)
                } else {
                    try maps.quicServers.delete(key)
                }
            case let .sourceRoute(vipIndex, prefix, target):
                let key = prefix.abiSourceRouteKey(vipIndex: vipIndex)
                if let target {
                    var value = petrel_source_route()
                    value.real_id = target.realId
                    value.real_generation = target.generation
                    try maps.sourceRoutes.update(key, value)
                } else {
                    try maps.sourceRoutes.delete(key)
                }
            }
        }
    }

    func snapshot(limits: DataPlaneLimits) throws(PetrelError) -> DataPlaneSnapshot {
        try DataPlaneSnapshot.read(from: maps, limits: limits)
    }
}
