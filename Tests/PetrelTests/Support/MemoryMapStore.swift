@testable import Petrel

/// The balancer's VIP, real and ring maps in memory: a `MapStore` that records
/// every write and can be told to fail one, so apply planning is tested without
/// root. `afterEachWrite` sees the maps as a packet would between two writes.
final class MemoryMapStore: MapStore {
    struct VipEntry: Hashable {
        var flags: VipFlags
        var statsIndex: UInt32
        var row: UInt32
        var generation: UInt32
    }

    var vips: [VipKey: VipEntry] = [:]
    var reals: [UInt32: (address: IPAddress?, generation: UInt32)] = [:]
    var rows: [UInt32: [UInt32]] = [:]
    /// The VIP address filter's non-zero words.
    var filter: [UInt32: UInt32] = [:]
    var encapsulation: [UInt32: Encapsulation] = [:]
    var quicServers: [UInt32: [UInt16: UInt32]] = [:]
    /// The source_routes trie: per VIP stats index, prefix -> (real id, generation).
    var sourceRoutes: [UInt32: [IPPrefix: SourceRouteTarget]] = [:]
    /// The addresses echo requests are answered for (vip_address_set).
    var addresses: Set<IPAddress> = []
    /// Map vip_generations, by stats index.
    var vipGenerations: [UInt32: UInt32] = [:]
    /// Per VIP key, every entry some CPU's VIP cache may still use: the entry as at
    /// the last `invalidateVipCaches` and each one written since (nil: no VIP).
    var cachedVipEntries: [VipKey: [VipEntry?]] = [:]
    /// Every write performed, in order.
    var log: [MapWrite] = []
    /// The number of the write (counted in `log`) that fails, if any.
    var failingWrite: Int?
    var afterEachWrite: ((MemoryMapStore) -> Void)?

    func perform(_ write: MapWrite) throws(PetrelError) {
        if failingWrite == log.count {
            failingWrite = nil
            throw .invalid(field: "map write #\(log.count)", value: "\(write)", expected: "injected failure")
        }
        switch write {
        case let .real(id, address, generation):
            reals[id] = (address, generation)
            encapsulation[id] = nil  // a whole entry: flags start at IP-in-IP
        case .resetRealTraffic, .resetVipTraffic: break
        case let .ringRow(row, slots): rows[row] = slots
        case let .vip(key, flags, statsIndex, row, generation):
            cachedVipEntries[key, default: [vips[key]]].append(VipEntry(flags: flags, statsIndex: statsIndex, row: row, generation: generation))
            vips[key] = cachedVipEntries[key]!.last!
        case let .vipGeneration(index, generation): vipGenerations[index] = generation
        case let .removeVip(key):
            cachedVipEntries[key, default: [vips[key]]].append(nil)
            vips[key] = nil
        case .invalidateVipCaches: cachedVipEntries = [:]
        case let .addressFilter(slot, bits): filter[slot] = bits == 0 ? nil : bits
        case let .realEncapsulation(id, value): encapsulation[id] = value
        case let .vipAddress(address, present): if present { addresses.insert(address) } else { addresses.remove(address) }
        case let .quicServer(vipIndex, serverId, realId, _): quicServers[vipIndex, default: [:]][serverId] = realId
        case let .sourceRoute(vipIndex, prefix, target):
            sourceRoutes[vipIndex, default: [:]][prefix] = target
            if sourceRoutes[vipIndex]?.isEmpty == true { sourceRoutes[vipIndex] = nil }
        }
        log.append(write)
        afterEachWrite?(self)
    }

    func snapshot(limits: DataPlaneLimits) throws(PetrelError) -> DataPlaneSnapshot {
        var snapshot = DataPlaneSnapshot(vips: [:], reals: [:], generations: [UInt32](repeating: 0, count: limits.maxReals))
        for (id, real) in reals {
            snapshot.generations[Int(id)] = real.generation
            if let address = real.address {
                snapshot.reals[id] = address
                snapshot.realEncapsulation[id] = encapsulation[id] ?? .ipip
            }
        }
        for (key, entry) in vips {
            snapshot.vips[key] = .init(flags: entry.flags, statsIndex: entry.statsIndex, row: entry.row, slots: rows[entry.row] ?? [],
                                       generation: entry.generation)
        }
        snapshot.vipGenerations = (0..<UInt32(limits.maxVips)).map { vipGenerations[$0] ?? 0 }
        snapshot.quicServers = quicServers.filter { !$0.value.isEmpty }
        snapshot.sourceRoutes = sourceRoutes
        snapshot.vipAddresses = addresses
        return snapshot
    }

    /// VIPs whose address the filter would wrongly call "no VIP" (or whose
    /// port-wildcard entry it would skip, or whose known flows it would let skip a
    /// needed VIP lookup): must always be empty.
    var vipsHiddenByFilter: [VipKey] {
        let flags = vips.mapValues(\.flags)
        return vips.keys.filter { key in
            let needed = AddressFilter.bits(of: key, flags: flags[key]!, among: flags)
            return (filter[AddressFilter.slot(of: key.address)] ?? 0) & needed != needed
        }.sorted()
    }

    /// What a packet to each VIP meets: its flags and, slot by slot, the address of
    /// the real (nil: no real). A slot naming an id that is not a live real is a
    /// dangling pointer, reported as the string "dangling".
    struct VipView: Hashable {
        var flags: VipFlags
        var slots: [String]
    }

    var dataPlaneView: [VipKey: VipView] {
        vips.mapValues(view)
    }

    /// What a packet meets through each VIP entry a CPU's VIP cache may still use
    /// (`cachedVipEntries`): the same view, from entries an apply has since replaced.
    var cachedDataPlaneViews: [(key: VipKey, view: VipView)] {
        cachedVipEntries.flatMap { key, entries in entries.compactMap { $0 }.map { (key, view($0)) } }
    }

    private func view(_ entry: VipEntry) -> VipView {
        guard let row = rows[entry.row] else { return VipView(flags: entry.flags, slots: ["unwritten row \(entry.row)"]) }
        let slots = row.map { id -> String in
            if id == 0 { return "-" }
            guard let real = reals[id], let address = real.address else { return "dangling" }
            return "\(address)"
        }
        return VipView(flags: entry.flags, slots: slots)
    }
}

extension MemoryMapStore {
    /// What a new flow from `client` to the VIP meets in the trie, as the data plane
    /// looks: nothing unless the VIP carries the source-routes flag; else the longest
    /// prefix's real address, "ring" for none or a real out of service, "dangling"
    /// for a released or reused real.
    func sourceRouteView(of key: VipKey, client: IPAddress) -> String {
        guard let entry = vips[key], entry.flags.contains(.sourceRoutes) else { return "ring" }
        let routes = sourceRoutes[entry.statsIndex] ?? [:]
        guard let best = routes.keys.filter({ $0.contains(client) }).max(by: { $0.length < $1.length }), let target = routes[best],
              target.realId != 0 else { return "ring" }
        guard let real = reals[target.realId], let address = real.address else { return "dangling" }
        return real.generation == target.generation ? "\(address)" : "dangling"
    }
}
