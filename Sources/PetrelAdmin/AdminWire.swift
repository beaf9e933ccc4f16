import Petrel

// The JSON documents of the admin API, shared by `petreld` (which serves them)
// and `petrel` (which reads them). Field names are the config file's. Request
// bodies are read by `RequestBody`, strictly; these types write them.

/// A real as JSON: `{"address": "198.18.3.11", "weight": 1}`.
public struct RealDocument: Codable, Sendable, Equatable {
    public var address: String
    public var weight: UInt32?
    /// `ipip` (the default) or `gue`.
    public var encapsulation: String?
    /// On a `quic` VIP: the real's server id.
    public var quicServerId: UInt16?

    enum CodingKeys: String, CodingKey {
        case address, weight, encapsulation
        case quicServerId = "quic_server_id"
    }

    public init(address: String, weight: UInt32? = nil, encapsulation: String? = nil, quicServerId: UInt16? = nil) {
        self.address = address
        self.weight = weight
        self.encapsulation = encapsulation
        self.quicServerId = quicServerId
    }

    public init(_ real: Real) {
        self.init(address: "\(real.address)", weight: real.weight,
                  encapsulation: real.encapsulation == .ipip ? nil : real.encapsulation.rawValue, quicServerId: real.quicServerId)
    }
}

/// A source route as JSON: `{"prefix": "10.0.0.0/8", "real": "198.18.3.11"}`.
public struct SourceRouteDocument: Codable, Sendable, Equatable {
    public var prefix: String
    public var real: String

    public init(prefix: String, real: String) {
        self.prefix = prefix
        self.real = real
    }

    public init(_ route: SourceRoute) {
        self.init(prefix: "\(route.prefix)", real: "\(route.real)")
    }
}

/// A VIP as JSON: `{"protocol": "tcp", "address": "198.18.100.1", "port": 80, "flags": [], "reals": [...]}`.
public struct VipDocument: Codable, Sendable, Equatable {
    public var `protocol`: String
    public var address: String
    public var port: Int
    public var flags: [String]?
    public var reals: [RealDocument]?
    /// Client prefixes pinned to reals; absent when the VIP has none.
    public var sourceRoutes: [SourceRouteDocument]?

    enum CodingKeys: String, CodingKey {
        case `protocol`, address, port, flags, reals
        case sourceRoutes = "source_routes"
    }

    public init(protocol: String, address: String, port: Int, flags: [String]? = nil, reals: [RealDocument]? = nil,
                sourceRoutes: [SourceRouteDocument]? = nil) {
        self.protocol = `protocol`
        self.address = address
        self.port = port
        self.flags = flags
        self.reals = reals
        self.sourceRoutes = sourceRoutes
    }

    public init(_ vip: Vip) {
        self.init(protocol: vip.key.proto.rawValue, address: "\(vip.key.address)", port: Int(vip.key.port),
                  flags: vip.flags.names, reals: vip.reals.map(RealDocument.init),
                  sourceRoutes: vip.sourceRoutes.isEmpty ? nil : vip.sourceRoutes.map(SourceRouteDocument.init))
    }

    /// The VIP's key, checked field by field.
    public func key() throws(PetrelError) -> VipKey {
        try VipKey.parse(protocol: self.protocol, address: address, port: String(port))
    }
}

extension VipKey {
    /// Parses the three parts of a VIP as they appear in URLs and JSON.
    public static func parse(protocol proto: String, address: String, port: String) throws(PetrelError) -> VipKey {
        guard let l4 = L4Protocol(rawValue: proto.lowercased()) else {
            throw .invalid(field: "protocol", value: "\"\(proto)\"", expected: "must be tcp or udp")
        }
        guard let ip = IPAddress(address) else {
            throw .invalid(field: "address", value: "\"\(address)\"", expected: "must be an IPv4 or IPv6 address")
        }
        guard let number = UInt16(port) else {
            throw .invalid(field: "port", value: port, expected: VipKey.portRule.expected)
        }
        return VipKey(address: ip, port: number, proto: l4)
    }

    /// The VIP's part of an admin URL: `tcp/198.18.100.1/80`.
    public var pathComponent: String { "\(proto.rawValue)/\(address)/\(port)" }
}

/// `{"weight": 3}`.
public struct WeightDocument: Codable, Sendable {
    public var weight: UInt32
    public init(weight: UInt32) { self.weight = weight }
}

/// Every error answer: `{"error": "weight: must be ..."}`; `issues` for a refused config file.
public struct ErrorDocument: Codable, Sendable {
    public var error: String
    public var issues: [String]?
    public init(error: String, issues: [String]? = nil) {
        self.error = error
        self.issues = issues
    }
}

/// What a change did: the counts of `ApplyReport`.
public struct ChangeDocument: Codable, Sendable {
    public var vipsAdded: Int
    public var vipsRemoved: Int
    public var vipsChanged: Int
    public var realsAdded: Int
    public var realsRemoved: Int
    public var ringSlotsChanged: Int
    /// The config generation after the change (reloads only).
    public var generation: Int?
    /// Reloads only: restart-only settings the file changes, kept at their running values
    /// ("interface: veth1 in the file, veth0 running").
    public var restartNeeded: [String]?
    /// `POST /v1/vips` only: whether the VIP was created (else replaced), and what changed
    /// in words (`VipChanges`).
    public var created: Bool?
    public var changes: [String]?

    public init(_ report: ApplyReport, generation: Int? = nil, restartNeeded: [String]? = nil) {
        vipsAdded = report.vipsAdded
        vipsRemoved = report.vipsRemoved
        vipsChanged = report.vipsChanged
        realsAdded = report.realsAdded
        realsRemoved = report.realsRemoved
        ringSlotsChanged = report.ringSlotsChanged
        self.generation = generation
        self.restartNeeded = restartNeeded
    }

    enum CodingKeys: String, CodingKey {
        case vipsAdded = "vips_added", vipsRemoved = "vips_removed", vipsChanged = "vips_changed"
        case realsAdded = "reals_added", realsRemoved = "reals_removed", ringSlotsChanged = "ring_slots_changed"
        case generation, restartNeeded = "restart_needed", created, changes
    }
}

/// Packets and bytes of one VIP or real.
public struct TrafficDocument: Codable, Sendable {
    /// `tcp/198.18.100.1:80` for a VIP, the address for a real.
    public var name: String
    public var packets: UInt64
    public var bytes: UInt64
    public init(name: String, packets: UInt64, bytes: UInt64) {
        self.name = name
        self.packets = packets
        self.bytes = bytes
    }
}

/// `GET /v1/stats`: global counters by reason name, then per VIP and per real.
public struct StatsDocument: Codable, Sendable {
    public var global: [String: UInt64]
    public var vips: [TrafficDocument]
    public var reals: [TrafficDocument]

    public init(_ stats: Stats) {
        global = Dictionary(uniqueKeysWithValues: StatReason.allCases.map { ($0.name, stats[$0]) })
        vips = stats.vips.sorted { $0.key < $1.key }
            .map { TrafficDocument(name: "\($0.key)", packets: $0.value.packets, bytes: $0.value.bytes) }
        reals = stats.reals.sorted { $0.key < $1.key }
            .map { TrafficDocument(name: "\($0.key)", packets: $0.value.packets, bytes: $0.value.bytes) }
    }
}

/// `GET /v1/explain`.
public struct ExplainDocument: Codable, Sendable {
    public var flow: String
    public var vip: String?
    public var flags: [String]
    public var hash: UInt32
    public var ringSlot: Int?
    public var ringReal: String?
    public var rememberedReal: String?
    /// The source route whose prefix is the longest to contain the client, if any.
    public var sourceRoute: ExplainSourceRouteDocument?
    /// Where the next packet goes; nil: dropped (or passed, without a VIP).
    public var real: String?
    /// The largest client IP packet that fits to `real` once encapsulated (bigger ones get ICMP too big).
    public var largestPacket: Int?
    /// The explanation as the operator reads it.
    public var text: String

    public init(_ explanation: Explanation) {
        flow = "\(explanation.flow)"
        vip = explanation.vip.map { "\($0)" }
        flags = explanation.flags.names
        hash = explanation.hash
        ringSlot = explanation.ringSlot
        ringReal = explanation.ringReal.map { "\($0)" }
        rememberedReal = explanation.rememberedReal.map { "\($0)" }
        sourceRoute = explanation.sourceRoute.map {
            ExplainSourceRouteDocument(prefix: "\($0.prefix)", real: "\($0.real)", inService: $0.inService)
        }
        real = explanation.real.map { "\($0)" }
        largestPacket = explanation.largestPacket
        text = explanation.description
    }

    enum CodingKeys: String, CodingKey {
        case flow, vip, flags, hash, ringSlot = "ring_slot", ringReal = "ring_real"
        case rememberedReal = "remembered_real", sourceRoute = "source_route", real, largestPacket = "largest_packet", text
    }
}

/// The source route in an explanation: `{"prefix": "10.0.0.0/8", "real": "198.18.3.11", "in_service": true}`.
public struct ExplainSourceRouteDocument: Codable, Sendable, Equatable {
    public var prefix: String
    public var real: String
    /// False while the real has weight 0 (drained or down): the ring decides.
    public var inService: Bool

    public init(prefix: String, real: String, inService: Bool) {
        self.prefix = prefix
        self.real = real
        self.inService = inService
    }

    enum CodingKeys: String, CodingKey { case prefix, real, inService = "in_service" }
}

/// `GET /v1/ring/...`: each real's share of the VIP's Maglev ring.
public struct RingDocument: Codable, Sendable {
    public struct Share: Codable, Sendable {
        public var address: String
        public var weight: UInt32
        public var slots: Int
        public var share: Double
        public init(address: String, weight: UInt32, slots: Int, share: Double) {
            self.address = address
            self.weight = weight
            self.slots = slots
            self.share = share
        }
    }

    public var vip: String
    public var ringSize: Int
    public var reals: [Share]

    public init(vip: String, ringSize: Int, reals: [Share]) {
        self.vip = vip
        self.ringSize = ringSize
        self.reals = reals
    }

    enum CodingKeys: String, CodingKey { case vip, ringSize = "ring_size", reals }
}

/// `GET /v1/status`.
public struct StatusDocument: Codable, Sendable {
    public var config: String
    /// 1 for the config read at start, +1 per successful reload.
    public var generation: Int
    public var interface: String
    public var attachMode: String
    public var attached: Bool
    /// True when this process adopted maps pinned by an earlier one.
    public var adopted: Bool
    public var pinPath: String
    public var vips: Int
    public var reloadsSucceeded: Int
    public var reloadsFailed: Int
    /// The issues of the last refused reload, if the last reload was refused.
    public var lastReloadIssues: [String]?
    public var nextHopMAC: String
    /// The attached balancer program, nil when none is attached.
    public var program: ProgramDocument?
    /// Restart-only settings in which the file (as last reloaded) differs from what runs.
    public var restartNeeded: [String]?
    /// Present when the config has a `bgp` section.
    public var bgp: BGPStatusDocument?

    /// Health checks: reals checked, up, down, and VIPs left without a real in service.
    public var health: HealthSummaryDocument?

    public init(config: String, generation: Int, interface: String, attachMode: String, attached: Bool, adopted: Bool,
                pinPath: String, vips: Int, reloadsSucceeded: Int, reloadsFailed: Int, lastReloadIssues: [String]?,
                nextHopMAC: String, program: ProgramDocument? = nil, restartNeeded: [String]? = nil,
                health: HealthSummaryDocument? = nil, bgp: BGPStatusDocument? = nil) {
        self.config = config
        self.generation = generation
        self.interface = interface
        self.attachMode = attachMode
        self.attached = attached
        self.adopted = adopted
        self.pinPath = pinPath
        self.vips = vips
        self.reloadsSucceeded = reloadsSucceeded
        self.reloadsFailed = reloadsFailed
        self.lastReloadIssues = lastReloadIssues
        self.nextHopMAC = nextHopMAC
        self.program = program
        self.restartNeeded = restartNeeded
        self.health = health
        self.bgp = bgp
    }

    enum CodingKeys: String, CodingKey {
        case config, generation, interface, attachMode = "attach_mode", attached, adopted, pinPath = "pin_path", vips
        case reloadsSucceeded = "reloads_succeeded", reloadsFailed = "reloads_failed"
        case lastReloadIssues = "last_reload_issues", nextHopMAC = "next_hop_mac"
        case program, restartNeeded = "restart_needed", health, bgp
    }
}

/// The balancer program attached to the interface: `{"id": 42, "tag": "a1b2c3d4e5f60718"}`.
public struct ProgramDocument: Codable, Sendable, Equatable {
    /// The kernel's program id (as `bpftool prog show id` takes it).
    public var id: UInt32
    /// The kernel's tag of the program's instructions, hex.
    public var tag: String

    public init(id: UInt32, tag: String) {
        self.id = id
        self.tag = tag
    }
}
