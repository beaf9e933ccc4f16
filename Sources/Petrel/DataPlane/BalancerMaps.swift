import Glibc
import CPetrelABI
import PetrelBPF
import PetrelObjects

/// The balancer's maps, by role. Names match bpf/lib/maps.h.
struct BalancerMaps {
    static let programName = "petrel_balancer"
    /// Every map of the object; the ones sized by DataPlaneLimits are listed in `sizes`.
    static let names = ["config", "vips_v4", "vips_v6", "vip_addresses", "reals", "ring", "conn_tables_v4", "conn_tables_v6",
                        "conn_shared_v4", "conn_shared_v6", "stats", "flood_state", "vip_stats", "real_stats", "quic_servers",
                        "source_routes", "flow_log", "flow_log_settings",
                        "vip_address_set", "icmp_rate", "echo_program", "vip_generations", "flow_cache_v4", "flow_cache_v6",
                        "vip_cache", ".data.vips"]
                        + captureNames
    /// Maps added after pinning existed: pins left by an older version lack them. They
    /// are created afresh and pinned beside the adopted ones; the next apply fills them
    /// (or they hold only run-time state), so an upgrade keeps every flow.
    static let addedSincePinning = Set(["quic_servers", "source_routes", "flow_log", "flow_log_settings",
                                        "vip_address_set", "icmp_rate", "echo_program", "vip_generations",
                                        "flow_cache_v4", "flow_cache_v6", "vip_cache", ".data.vips"] + captureNames)
    /// The echo-reply program the balancer tail-calls (bpf/lib/icmp.h), stored in `echo_program`.
    static let echoProgramName = "petrel_echo_reply"
    /// The capture maps (bpf/lib/capture.h); `.data.capture` holds the global capture_slots_active.
    /// Pins made before capture existed lack them: adopting such pins creates these afresh.
    static let captureNames = [".data.capture", "capture_filters", "capture_counts", "capture_received_copy", "capture_ring"]

    /// The file a map is pinned as: bpffs refuses names with a dot.
    static func pinName(_ mapName: String) -> String {
        switch mapName {
        case ".data.capture": "capture_active"
        case ".data.vips": "vip_epoch"
        default: mapName
        }
    }

    let config: BPFMap
    /// VIPs by family: IPv4 keys are compact (petrel_vip_key_v4), IPv6 keys petrel_vip_key.
    let vipsV4: BPFMap
    let vipsV6: BPFMap
    /// The VIP address filter (PETREL_ADDR_FILTER_SLOTS words).
    let vipAddresses: BPFMap
    /// Every address some VIP has, exactly (petrel_vip_address keys): echo requests are answered for these.
    let vipAddressSet: BPFMap
    /// Slot 0: the echo-reply program (a program array).
    let echoProgram: BPFMap
    /// The generation of each VIP stats index (see petrel_vip_meta).
    let vipGenerations: BPFMap
    /// `.data.vips`: the global vip_epoch, which every VIP cache slot must carry
    /// (bumped after VIP entries are written: `MapWrite.invalidateVipCaches`).
    let vipEpoch: BPFMap
    let reals: BPFMap
    let ring: BPFMap
    /// Per family: the per-CPU connection tables (array of maps) and the shared one.
    let connectionTablesV4: BPFMap
    let connectionTablesV6: BPFMap
    let sharedConnectionsV4: BPFMap
    let sharedConnectionsV6: BPFMap
    let stats: BPFMap
    let vipStats: BPFMap
    let realStats: BPFMap
    /// (VIP stats index, QUIC server id) -> real id (bpf/lib/quic.h).
    let quicServers: BPFMap
    /// (VIP stats index, client prefix) -> real id: an LPM trie (bpf/lib/source_route.h).
    let sourceRoutes: BPFMap
    /// The flow log's ring buffer and its on/sampling word (bpf/lib/flowlog.h).
    let flowLog: BPFMap
    let flowLogSettings: BPFMap
    /// Packet capture: the active-slots word, the slots' filters and counters, the records' ring.
    let captureActive: BPFMap
    let captureFilters: BPFMap
    let captureCounts: BPFMap
    let captureRing: BPFMap
    /// Every map by name, for pinning and for sharing with the attached copy.
    let all: [String: BPFMap]

    /// Value sizes of the maps whose layout changed since pins existed (the VIP entry and
    /// the connection entry gained the VIP generation, the shared tables became sets):
    /// pins of an older layout cannot be adopted, unless replacedOnLayoutChange.
    static let valueSizes: [String: Int] = [
        "vips_v4": MemoryLayout<petrel_vip_meta>.size, "vips_v6": MemoryLayout<petrel_vip_meta>.size,
        "conn_shared_v4": MemoryLayout<petrel_shared_set_v4>.size, "conn_shared_v6": MemoryLayout<petrel_shared_set_v6>.size,
        "flow_cache_v4": MemoryLayout<petrel_flow_cache_v4>.size, "flow_cache_v6": MemoryLayout<petrel_flow_cache_v6>.size,
        "vip_cache": MemoryLayout<petrel_vip_cache_slot>.size,
        "stats": MemoryLayout<petrel_counters>.size,
    ]
    /// Maps that hold only counters, caches or flows being handed over: pins of another
    /// layout (a version with other counters, cache slots or shared tables) are replaced
    /// by a fresh map, the counters starting again from zero, the caches refilling and
    /// new flows whose CPU's table has not learnt them yet taking the ring's real (the
    /// same unless the ring changed), instead of refusing to adopt the rest.
    static let replacedOnLayoutChange: Set<String> = ["stats", "flow_cache_v4", "flow_cache_v6", "vip_cache",
                                                      "conn_shared_v4", "conn_shared_v6"]

    /// max_entries per map for the given limits.
    static func sizes(for limits: DataPlaneLimits) -> [String: Int] {
        [
            "vips_v4": limits.maxVips,
            "vips_v6": limits.maxVips,
            "vip_address_set": limits.maxVips,
            "reals": limits.maxReals,
            "ring": 2 * limits.maxVips,  // two rows per VIP: a ring is switched by pointing at the other
            "conn_shared_v4": limits.sharedTableSets,
            "conn_shared_v6": limits.sharedTableSets,
            "vip_stats": limits.maxVips,
            "vip_generations": limits.maxVips,
            "real_stats": limits.maxReals,
            "flow_cache_v4": 1 << limits.flowCacheShift,
            "flow_cache_v6": 1 << limits.flowCacheShift,
            "vip_cache": 1 << limits.vipCacheShift,
        ]
    }

    /// The kernel's tick rate (HZ), the data plane's clock for its per-second limits
    /// (bpf/lib/clock.h). A coarse clock advances once a tick, so its resolution is
    /// one tick (TICK_NSEC, a second over HZ rounded).
    static var kernelTicksPerSecond: UInt32 {
        var resolution = timespec()
        guard clock_getres(CLOCK_MONOTONIC_COARSE, &resolution) == 0 else { return 1000 }  // never on Linux
        let tick = Int(resolution.tv_sec) * 1_000_000_000 + Int(resolution.tv_nsec)
        guard tick > 0 else { return 1000 }
        return UInt32(clamping: max(1, (1_000_000_000 + tick / 2) / tick))
    }

    /// Sizes the maps and sets the load-time settings of a balancer object not yet loaded.
    static func prepare(_ object: BPFObject, limits: DataPlaneLimits) throws(BPFError) {
        for (name, size) in sizes(for: limits) { try object.setMaxEntries(of: name, to: size) }
        try object.setValueSize(of: "ring", to: limits.ringSize * MemoryLayout<UInt32>.size)
        var settings = petrel_load_settings()
        settings.ring_size = UInt32(limits.ringSize)
        settings.flow_cache_shift = UInt32(limits.flowCacheShift)
        settings.vip_cache_shift = UInt32(limits.vipCacheShift)
        settings.ticks_per_second = kernelTicksPerSecond
        settings.shared_sets = UInt32(limits.sharedTableSets)
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
        vipsV4 = all["vips_v4"]!
        vipsV6 = all["vips_v6"]!
        vipAddresses = all["vip_addresses"]!
        vipAddressSet = all["vip_address_set"]!
        echoProgram = all["echo_program"]!
        vipGenerations = all["vip_generations"]!
        vipEpoch = all[".data.vips"]!
        reals = all["reals"]!
        ring = all["ring"]!
        connectionTablesV4 = all["conn_tables_v4"]!
        connectionTablesV6 = all["conn_tables_v6"]!
        sharedConnectionsV4 = all["conn_shared_v4"]!
        sharedConnectionsV6 = all["conn_shared_v6"]!
        stats = all["stats"]!
        vipStats = all["vip_stats"]!
        realStats = all["real_stats"]!
        quicServers = all["quic_servers"]!
        sourceRoutes = all["source_routes"]!
        flowLog = all["flow_log"]!
        flowLogSettings = all["flow_log_settings"]!
        captureActive = all[".data.capture"]!
        captureFilters = all["capture_filters"]!
        captureCounts = all["capture_counts"]!
        captureRing = all["capture_ring"]!
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
