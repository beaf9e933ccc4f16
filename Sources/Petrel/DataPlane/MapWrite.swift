import CPetrelABI

/// One write to the balancer's VIP, real and ring maps. An apply is planned as
/// an ordered list of these (`ApplyPlan.writes`), so its order, which is what
/// keeps every packet seeing a whole old or a whole new VIP, is visible and
/// testable without a kernel.
enum MapWrite: Hashable, Sendable {
    /// The real with this id: its address and generation. A nil address releases
    /// the id (the slot is marked unused, its generation kept).
    case real(id: UInt32, address: IPAddress?, generation: UInt32)
    /// Zeroes a real id's traffic counters, before the id is given to a new real.
    case resetRealTraffic(id: UInt32)
    /// A whole ring row of real ids (0: no real).
    case ringRow(row: UInt32, slots: [UInt32])
    /// Zeroes a VIP stats entry, before it is given to a new VIP.
    case resetVipTraffic(index: UInt32)
    /// The VIP's entry: its flags, its stats entry and the ring row it uses, and the
    /// generation of its stats index. This one update is what switches a VIP from
    /// its old state to its new one.
    case vip(VipKey, flags: VipFlags, statsIndex: UInt32, row: UInt32, generation: UInt32)
    /// The generation of a VIP stats index (map vip_generations): bumped before the
    /// index is given to a VIP, and before that VIP is removed, so no connection
    /// entry of an earlier holder forwards without looking its VIP up.
    case vipGeneration(index: UInt32, generation: UInt32)
    /// Removes the VIP's entry: its packets are passed to the kernel from then on.
    case removeVip(VipKey)
    /// Bumps vip_epoch, so every CPU's VIP cache forgets the VIP entries it copied
    /// (petrel_vip_cache_slot). Until then a CPU may still use an entry as it was
    /// when the last bump was made, so a plan bumps after its VIP entries are
    /// written and before any write that takes away what their old entries named
    /// (a ring row, a real).
    case invalidateVipCaches
    /// One word of the VIP address filter (`AddressFilter`): a VIP's bits are set
    /// before its entry is written and cleared only after its entry is removed.
    case addressFilter(slot: UInt32, bits: UInt32)
    /// An address some VIP has (present) or no VIP has any more: map vip_address_set,
    /// whose addresses get echo replies. Added with the filter, removed after the VIPs.
    case vipAddress(IPAddress, present: Bool)
    /// How a real is reached (IP-in-IP or GUE): its flags, the rest of its entry kept.
    case realEncapsulation(id: UInt32, encapsulation: Encapsulation)
    /// A QUIC server id of the VIP with this stats index names this real (of this
    /// generation); a nil real removes the id.
    case quicServer(vipIndex: UInt32, serverId: UInt16, realId: UInt32?, generation: UInt32)
    /// A source route of the VIP with this stats index: clients in `prefix` go to
    /// `target`'s real; a nil target removes the route.
    case sourceRoute(vipIndex: UInt32, prefix: IPPrefix, target: SourceRouteTarget?)
}

/// What a source route's trie entry holds: a real id and its generation, or id 0
/// (`outOfService`) while the real has weight 0 (drained or down): the ring decides.
struct SourceRouteTarget: Hashable, Sendable {
    var realId: UInt32
    var generation: UInt32

    static let outOfService = SourceRouteTarget(realId: UInt32(PETREL_NO_REAL), generation: 0)
}

/// Where planned writes go: the kernel's maps (`KernelMapStore`), or memory in
/// unit tests. A store also reads back what it holds, for adopting pinned maps
/// and for recovering after a write failed half-way.
protocol MapStore: AnyObject {
    func perform(_ write: MapWrite) throws(PetrelError)
    func snapshot(limits: DataPlaneLimits) throws(PetrelError) -> DataPlaneSnapshot
}
