import Petrel
import PetrelHealth

/// Everything one `petreld` instance is told by its config file: where to attach,
/// where to send packets, how big the maps are, and the VIPs with their reals.
///
/// A value that came out of `ConfigLoader` has passed every check listed in
/// `config/README.md`; a value built in code has not (run its `yaml` through
/// `ConfigLoader.parse` to check it).
public struct PetrelConfiguration: Equatable, Sendable {
    // MARK: Attachment and forwarding

    /// The network interface the XDP program attaches to, such as `eth0`.
    public var interface: String
    /// Whether the program runs in the driver or in the generic stack.
    public var attachMode: AttachMode
    /// The router that forwarded packets are sent to.
    public var nextHop: NextHop
    /// Outer IPv4 source prefix: the high 16 bits are kept, the low 16 come from the flow hash.
    public var encapSourceV4: IPAddress
    /// Outer IPv6 source prefix: the high 64 bits are kept, the low 64 come from the flow hash.
    public var encapSourceV6: IPAddress
    /// UDP destination port of GUE packets to reals with `encapsulation: gue`.
    public var guePort: UInt16
    /// Largest IP packet the egress link carries; nil means "ask the interface".
    public var mtu: Int?
    /// New connections per CPU per second remembered in the connection tables
    /// (above it they forward unremembered); 0 turns the SYN-flood guard off.
    public var synFloodThreshold: Int
    /// Answer echo requests to VIP addresses in the data plane (`icmp.echo_reply`).
    public var icmpEchoReply: Bool
    /// Answer packets too big once encapsulated with ICMP (`icmp.too_big`).
    public var icmpTooBig: Bool
    /// ICMP answers per CPU per second (`icmp.rate_limit`); 0: no limit.
    public var icmpRateLimit: Int

    // MARK: Map sizes

    /// Maglev ring slots per VIP; a prime.
    public var ringSize: Int
    /// Connection-table entries per CPU.
    public var connectionTableSize: Int
    /// Capacity of the VIP map.
    public var maxVips: Int
    /// Capacity of the real map; id 0 is reserved, so `maxReals - 1` distinct reals fit.
    public var maxReals: Int

    // MARK: Daemon plumbing

    /// bpffs directory where the maps are pinned, so a restart keeps connections.
    public var pinPath: String
    /// Unix socket of the admin API (created with mode 0600).
    public var adminSocket: String
    /// Optional loopback TCP endpoint of the admin API.
    public var adminTCP: ListenAddress?
    /// Optional loopback endpoint serving Prometheus `/metrics`.
    public var metricsListen: ListenAddress?

    /// Optional: announce the VIP addresses over BGP (BGPConfiguration.swift); nil means no BGP.
    public var bgp: BGPConfiguration?

    // MARK: Services

    /// The VIPs to serve, in file order.
    public var vips: [Vip]
    /// Which reals are health-checked, and how (`health_check` sections).
    public var healthChecks: HealthCheckPolicy

    /// A configuration with every setting not given at its default.
    public init(
        interface: String,
        nextHop: NextHop,
        attachMode: AttachMode = Defaults.attachMode,
        encapSourceV4: IPAddress = Defaults.encapSourceV4,
        encapSourceV6: IPAddress = Defaults.encapSourceV6,
        guePort: UInt16 = Defaults.guePort,
        mtu: Int? = nil,
        synFloodThreshold: Int = Defaults.synFloodThreshold,
        icmpEchoReply: Bool = Defaults.icmpEchoReply,
        icmpTooBig: Bool = Defaults.icmpTooBig,
        icmpRateLimit: Int = Defaults.icmpRateLimit,
        ringSize: Int = Defaults.ringSize,
        connectionTableSize: Int = Defaults.connectionTableSize,
        maxVips: Int = Defaults.maxVips,
        maxReals: Int = Defaults.maxReals,
        pinPath: String = Defaults.pinPath,
        adminSocket: String = Defaults.adminSocket,
        adminTCP: ListenAddress? = nil,
        metricsListen: ListenAddress? = nil,
        vips: [Vip] = [],
        healthChecks: HealthCheckPolicy = HealthCheckPolicy()
    ) {
        self.interface = interface
        self.nextHop = nextHop
        self.attachMode = attachMode
        self.encapSourceV4 = encapSourceV4
        self.encapSourceV6 = encapSourceV6
        self.guePort = guePort
        self.mtu = mtu
        self.synFloodThreshold = synFloodThreshold
        self.icmpEchoReply = icmpEchoReply
        self.icmpTooBig = icmpTooBig
        self.icmpRateLimit = icmpRateLimit
        self.ringSize = ringSize
        self.connectionTableSize = connectionTableSize
        self.maxVips = maxVips
        self.maxReals = maxReals
        self.pinPath = pinPath
        self.adminSocket = adminSocket
        self.adminTCP = adminTCP
        self.metricsListen = metricsListen
        self.vips = vips
        self.healthChecks = healthChecks
    }
}

// MARK: - Nested types

extension PetrelConfiguration {
    /// Where the XDP program runs.
    public enum AttachMode: String, Hashable, Sendable, CaseIterable {
        /// In the NIC driver: the fast path; the driver must support XDP.
        case native
        /// In the generic (skb) path: works on any interface, much slower. For veth and tests.
        case generic
    }

    /// The L2 destination of every forwarded frame.
    public enum NextHop: Hashable, Sendable, CustomStringConvertible {
        /// A fixed MAC address.
        case mac(MACAddress)
        /// An IP address whose MAC the daemon resolves (ARP/NDP) when it starts.
        case gateway(IPAddress)

        /// `mac 02:00:00:00:02:01` or `gateway 198.18.2.1`.
        public var description: String {
            switch self {
            case .mac(let mac): return "mac \(mac)"
            case .gateway(let address): return "gateway \(address)"
            }
        }
    }

    /// A loopback TCP endpoint the daemon listens on.
    public struct ListenAddress: Hashable, Sendable, CustomStringConvertible {
        /// The IP address in text form (`127.0.0.1`, `::1`), without brackets.
        public var host: String
        /// The TCP port, 1...65535.
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// `127.0.0.1:9180` or `[::1]:9180`, the form the config file uses.
        public var description: String {
            host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        }
    }
}

// MARK: - Defaults and limits

extension PetrelConfiguration {
    /// The value of every setting the file may leave out.
    public enum Defaults {
        public static let attachMode = AttachMode.native
        public static let encapSourceV4 = ForwardingSettings.defaultEncapSourceV4
        public static let encapSourceV6 = ForwardingSettings.defaultEncapSourceV6
        // The data plane's own defaults (PETREL_DEFAULT_* in the ABI header).
        public static let ringSize = DataPlaneLimits().ringSize
        public static let connectionTableSize = DataPlaneLimits().connectionTableSize
        public static let maxVips = DataPlaneLimits().maxVips
        public static let maxReals = DataPlaneLimits().maxReals
        public static let guePort = ForwardingSettings.defaultGUEPort
        public static let pinPath = "/sys/fs/bpf/petrel"
        public static let adminSocket = "/run/petrel/admin.sock"
        public static let weight = Real.defaultWeight
        public static let synFloodThreshold = Int(ForwardingSettings.defaultSynFloodThreshold)
        /// On, as Katran: the balancer owns the VIP addresses, so it answers for them.
        public static let icmpEchoReply = true
        public static let icmpTooBig = true
        public static let icmpRateLimit = Int(ForwardingSettings.defaultICMPRateLimit)
    }

    /// The ranges the loader accepts. `config/README.md` gives the reason for each.
    public enum Limits {
        public static let ringSize = DataPlaneLimits.ringSizeRange
        public static let connectionTableSize = DataPlaneLimits.connectionTableSizeRange
        public static let maxVips = DataPlaneLimits.maxVipsRange
        public static let maxReals = DataPlaneLimits.maxRealsRange
        /// `max_vips * ring_size`; each VIP has two rows of 4-byte real ids, so 8 GiB.
        public static let totalRingSlots = DataPlaneLimits.maxRingSlots
        public static let weight = Real.weightRule.range
        public static let port = VipKey.portRule.range
        public static let listenPort = 1...65_535
        public static let guePort = IntegerRule(1...65_535)
        /// IPv6 needs 1280; 9216 is the largest jumbo frame common NICs accept.
        public static let mtu = ForwardingSettings.mtuRange
        public static let synFloodThreshold = 0...Int(UInt32.max)
        public static let icmpRateLimit = 0...Int(UInt32.max)
        /// IFNAMSIZ minus the terminating NUL.
        public static let interfaceNameLength = 15
        /// `sun_path` minus the terminating NUL.
        public static let unixSocketPathLength = 107
    }
}
