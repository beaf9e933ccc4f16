import CPetrelABI
import PetrelBPF
import PetrelObjects

/// The balancer's maps, by role. Names match bpf/lib/maps.h.
struct BalancerMaps {
    static let programName = "petrel_balancer"
    static let sharedConnectionTable = "conn_shared"
    /// Every map of the object; the ones sized by DataPlaneLimits are listed in `sizes`.
    static let names = ["config", "vips", "reals", "ring", "conn_tables", "conn_shared", "stats", "vip_stats", "real_stats"]

    let config: BPFMap
    let vips: BPFMap
    let reals: BPFMap
    let ring: BPFMap
    let connectionTables: BPFMap
    let sharedConnections: BPFMap
    let stats: BPFMap
    let vipStats: BPFMap
    let realStats: BPFMap
    /// Every map by name, for pinning and for sharing with the attached copy.
    let all: [String: BPFMap]

    /// max_entries per map for the given limits.
    static func sizes(for limits: DataPlaneLimits) -> [String: Int] {
        [
            "vips": limits.maxVips,
            "reals": limits.maxReals,
            "ring": 2 * limits.maxVips,  // two rows per VIP: a ring is switched by pointing at the other
            "conn_shared": limits.connectionTableSize,
            "vip_stats": limits.maxVips,
            "real_stats": limits.maxReals,
        ]
    }

    /// Sizes the maps and sets the load-time settings of a balancer object not yet loaded.
    static func prepare(_ object: BPFObject, limits: DataPlaneLimits) throws(BPFError) {
        for (name, size) in sizes(for: limits) { try object.setMaxEntries(of: name, to: size) }
        try object.setValueSize(of: "ring", to: limits.ringSize * MemoryLayout<UInt32>.size)
        var settings = petrel_load_settings()
        settings.ring_size = UInt32(limits.ringSize)
        try object.setReadOnlyData(settings)
    }

    init(object: BPFObject) throws(BPFError) {
        var all: [String: BPFMap] = [:]
        for name in BalancerMaps.names { all[name] = try object.map(named: name) }
        self.init(all: all)
    }

    private init(all: [String: BPFMap]) {
        self.all = all
        config = all["config"]!
        vips = all["vips"]!
        reals = all["reals"]!
        ring = all["ring"]!
        connectionTables = all["conn_tables"]!
        sharedConnections = all["conn_shared"]!
        stats = all["stats"]!
        vipStats = all["vip_stats"]!
        realStats = all["real_stats"]!
    }

    /// Opens a fresh copy of the balancer object whose maps are these maps, sized
    /// the same: the copy libxdp loads and attaches shares every table and counter.
    func objectSharingMaps(limits: DataPlaneLimits) throws(BPFError) -> BPFObject {
        let object = try BPFObject(name: "petrel_balancer", elf: EmbeddedBPFObject.balancer.bytes)
        try BalancerMaps.prepare(object, limits: limits)
        for (name, map) in all { try object.reuse(map: name, from: map) }
        return object
    }
}
