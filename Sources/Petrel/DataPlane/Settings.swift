import CPetrelABI

/// Capacities fixed when the data plane is loaded. Changing them needs a new
/// load (and new pinned maps).
public struct DataPlaneLimits: Hashable, Sendable {
    /// Most VIPs at once (rows of the ring map).
    public var maxVips: Int
    /// Most distinct real addresses at once, plus one: id 0 means "no real".
    public var maxReals: Int
    /// Maglev slots per VIP; a prime, larger than any VIP's number of reals.
    public var ringSize: Int
    /// Flows remembered per CPU, and in the shared table (in sets, see sharedTableSets).
    public var connectionTableSize: Int

    public init(maxVips: Int = Int(PETREL_DEFAULT_MAX_VIPS), maxReals: Int = Int(PETREL_DEFAULT_MAX_REALS),
                ringSize: Int = Int(PETREL_DEFAULT_RING_SIZE), connectionTableSize: Int = Int(PETREL_DEFAULT_CONN_TABLE_SIZE)) {
        self.maxVips = maxVips
        self.maxReals = maxReals
        self.ringSize = ringSize
        self.connectionTableSize = connectionTableSize
    }

    /// The most ring slots per row set (`max_vips × ring_size`) the control plane
    /// agrees to create: with two rows per VIP and 4 bytes a slot, 8 GiB.
    public static let maxRingSlots = 1 << 30
    /// The largest ring a map value holds (the kernel's 4 MiB value limit).
    public static let maxRingSize = 1_000_003
    /// Ring sizes the control plane accepts (a prime in this range).
    public static let ringSizeRange = 2...maxRingSize
    public static let maxVipsRange = 1...65_536
    public static let maxRealsRange = 2...1_048_576
    public static let connectionTableSizeRange = 1...16_777_216

    /// Each CPU's flow caches (flow_cache_v4, flow_cache_v6) have 2^flowCacheShift
    /// slots: one per PETREL_FLOW_CACHE_ENTRIES_PER_SLOT connection-table entries
    /// (8,192 for the default table of 65,536), so a larger table, whose CPUs hold
    /// more flows at once, does not leave the cache thrashing.
    public var flowCacheShift: Int {
        DataPlaneLimits.cacheShift(covering: connectionTableSize / Int(PETREL_FLOW_CACHE_ENTRIES_PER_SLOT),
                                   atMost: Int(PETREL_FLOW_CACHE_MAX_SHIFT))
    }

    /// The shared tables (conn_shared_v4, conn_shared_v6) have this many sets of
    /// PETREL_SHARED_TABLE_WAYS entries: room for connectionTableSize flows, rounded up.
    public var sharedTableSets: Int {
        (connectionTableSize + Int(PETREL_SHARED_TABLE_WAYS) - 1) / Int(PETREL_SHARED_TABLE_WAYS)
    }

    /// Each CPU's VIP cache (vip_cache) has 2^vipCacheShift slots:
    /// PETREL_VIP_CACHE_SLOTS_PER_VIP per VIP (1,024 for the default 512 VIPs), at
    /// most 2^PETREL_VIP_CACHE_MAX_SHIFT.
    public var vipCacheShift: Int {
        DataPlaneLimits.cacheShift(covering: maxVips * Int(PETREL_VIP_CACHE_SLOTS_PER_VIP), atMost: Int(PETREL_VIP_CACHE_MAX_SHIFT))
    }

    /// The smallest power of two of at least `count` slots, from 2^PETREL_CACHE_MIN_SHIFT to 2^maxShift.
    private static func cacheShift(covering count: Int, atMost maxShift: Int) -> Int {
        var shift = Int(PETREL_CACHE_MIN_SHIFT)
        while 1 << shift < count && shift < maxShift { shift += 1 }
        return shift
    }

    func validate() throws(PetrelError) {
        if let issue = IntegerRule(DataPlaneLimits.maxVipsRange).check(maxVips, at: ["max_vips"]) { throw PetrelError(issue) }
        if let issue = IntegerRule(DataPlaneLimits.maxRealsRange).check(maxReals, at: ["max_reals"]) { throw PetrelError(issue) }
        guard ringSize >= 2, Primes.isPrime(ringSize) else {
            throw .invalid(field: "ring_size", value: "\(ringSize)", expected: "must be a prime number")
        }
        guard maxVips * ringSize <= DataPlaneLimits.maxRingSlots else {
            throw .limitExceeded(limit: "max_vips x ring_size (ring map slots)", requested: maxVips * ringSize, maximum: DataPlaneLimits.maxRingSlots)
        }
        // A row is one map value, and the kernel caps a value at 4 MiB.
        guard ringSize <= DataPlaneLimits.maxRingSize else {
            throw .invalid(field: "ring_size", value: "\(ringSize)", expected: "must be at most \(DataPlaneLimits.maxRingSize)")
        }
        if let issue = IntegerRule(DataPlaneLimits.connectionTableSizeRange).check(connectionTableSize, at: ["connection_table_size"]) {
            throw PetrelError(issue)
        }
    }
}

/// How forwarded packets are addressed on the wire.
public struct ForwardingSettings: Hashable, Sendable {
    /// Source MAC of forwarded frames: the MAC of the interface Petrel is attached to.
    public var interfaceMAC: MACAddress
    /// Destination MAC: the router towards the reals.
    public var nextHopMAC: MACAddress
    /// Largest encapsulated IP packet the link carries; bigger ones are dropped and counted.
    public var mtu: Int
    /// Outer IPv4 source prefix (/16); the low 16 bits come from the flow hash.
    public var encapSourceV4: IPAddress
    /// Outer IPv6 source prefix (/64); the low 64 bits come from the flow.
    public var encapSourceV6: IPAddress
    /// The SYN-flood guard: new decisions per CPU per second written to the
    /// connection tables; above it they still forward but are not remembered
    /// (counted as event_syn_flood). 0 turns the guard off.
    public var synFloodThreshold: UInt32
    /// UDP destination port of GUE packets (the reals' decapsulators listen on it).
    public var guePort: UInt16
    /// Answer echo requests to VIP addresses in the data plane (off: they go to the kernel).
    public var icmpEchoReply: Bool
    /// Answer packets too big once encapsulated with ICMP "fragmentation needed" /
    /// "packet too big" (off: they are only dropped and counted).
    public var icmpTooBig: Bool
    /// ICMP answers (echo replies and too-big) per CPU per second; 0: no limit.
    /// Above it the packet goes where it would without the answer (counted as event_icmp_rate_limited).
    public var icmpRateLimit: UInt32

    /// MTUs Petrel accepts: IPv6's minimum up to the largest common jumbo frame.
    public static let mtuRange = 1_280...9_216

    public static let defaultEncapSourceV4 = IPAddress.v4(198, 19, 0, 0)
    public static let defaultEncapSourceV6 = IPAddress.v6(high: 0xfd50_0000_ffff_0000, low: 0)
    /// Far above what one CPU sees from real clients, far below a flood's rate.
    public static let defaultSynFloodThreshold: UInt32 = 100_000

    /// Bits of each outer source prefix kept from the setting; the rest come from the flow.
    public static func encapPrefixLength(_ family: AddressFamily) -> Int { family == .ipv4 ? 16 : 64 }

    /// The rule for an outer source prefix: an address of `family` whose bits past
    /// its prefix length are zero (they are filled in from each flow).
    public static func checkEncapSource(_ address: IPAddress, family: AddressFamily, at path: FieldPath) -> ValidationIssue? {
        let name = family == .ipv4 ? "IPv4" : "IPv6"
        guard address.family == family else {
            return ValidationIssue(path, value: "\(address), which is \(family == .ipv4 ? "IPv6" : "IPv4")", expected: "must be an \(name) address")
        }
        let length = encapPrefixLength(family)
        let bytes = address.bytes
        guard bytes.dropFirst(length / 8).allSatisfy({ $0 == 0 }) else {
            let suggestion = IPAddress(wireBytes: bytes.prefix(length / 8) + [UInt8](repeating: 0, count: bytes.count - length / 8))!
            return ValidationIssue(path, value: "\(address); did you mean \(suggestion)?",
                                   expected: "must be a /\(length) prefix with the low \(bytes.count * 8 - length) bits zero (they are filled in from each flow)")
        }
        return nil
    }
    /// A thousand answers per CPU per second: far more than monitoring pings and path MTU
    /// discovery need (a client lowers its MTU after one answer), far less than a reflection flood.
    public static let defaultICMPRateLimit: UInt32 = 1_000

    /// 6080, as Katran's GUE default, so mixed fleets agree without configuration.
    public static let defaultGUEPort = UInt16(PETREL_GUE_DEFAULT_PORT)

    public init(interfaceMAC: MACAddress, nextHopMAC: MACAddress, mtu: Int,
                encapSourceV4: IPAddress = ForwardingSettings.defaultEncapSourceV4,
                encapSourceV6: IPAddress = ForwardingSettings.defaultEncapSourceV6,
                synFloodThreshold: UInt32 = ForwardingSettings.defaultSynFloodThreshold,
                guePort: UInt16 = ForwardingSettings.defaultGUEPort,
                icmpEchoReply: Bool = true, icmpTooBig: Bool = true,
                icmpRateLimit: UInt32 = ForwardingSettings.defaultICMPRateLimit) {
        self.interfaceMAC = interfaceMAC
        self.nextHopMAC = nextHopMAC
        self.mtu = mtu
        self.encapSourceV4 = encapSourceV4
        self.encapSourceV6 = encapSourceV6
        self.synFloodThreshold = synFloodThreshold
        self.guePort = guePort
        self.icmpEchoReply = icmpEchoReply
        self.icmpTooBig = icmpTooBig
        self.icmpRateLimit = icmpRateLimit
    }

    /// Checks every field; `LoadBalancer.configureForwarding` calls it too.
    public func validate() throws(PetrelError) {
        guard ForwardingSettings.mtuRange.contains(mtu) else {
            throw PetrelError(IntegerRule(ForwardingSettings.mtuRange).check(mtu, at: ["mtu"])!)
        }
        for (address, family, key) in [(encapSourceV4, AddressFamily.ipv4, "source_v4"), (encapSourceV6, .ipv6, "source_v6")] {
            if let issue = ForwardingSettings.checkEncapSource(address, family: family, at: ["encapsulation", .key(key)]) {
                throw PetrelError(issue)
            }
        }
        guard guePort != 0 else {
            throw .invalid(field: "encapsulation.gue_port", value: "0", expected: "must be a UDP port between 1 and 65535")
        }
    }
}

extension ForwardingSettings {
    /// The config map's one entry, as the balancer and the health-check forwarder read it.
    var abiConfig: petrel_config {
        var config = petrel_config()
        config.interface_mac = interfaceMAC.abiBytes
        config.next_hop_mac = nextHopMAC.abiBytes
        config.mtu = UInt32(mtu)
        config.encap_src_v4_be = encapSourceV4.abiWords.0
        config.encap_src_v6_be = encapSourceV6.abiWords
        config.syn_flood_threshold = synFloodThreshold
        config.gue_port_be = guePort.bigEndian
        config.icmp_answers = UInt8((icmpEchoReply ? UInt32(PETREL_ICMP_ECHO_REPLY) : 0) | (icmpTooBig ? UInt32(PETREL_ICMP_TOO_BIG) : 0))
        config.icmp_rate_limit = icmpRateLimit
        return config
    }
}

extension ForwardingSettings {
    /// The largest IP packet a client may send to a real reached this way: the link MTU
    /// less the outer headers (what a "too big" answer tells the client; IPv6 never below 1280).
    public func largestPacket(to real: IPAddress, encapsulation: Encapsulation, clientFamily: AddressFamily) -> Int {
        let fits = mtu - (real.family == .ipv4 ? 20 : 40) - (encapsulation == .gue ? 8 : 0)
        return clientFamily == .ipv6 ? max(fits, 1280) : fits
    }
}

extension String {
    func leftPadded(to width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
