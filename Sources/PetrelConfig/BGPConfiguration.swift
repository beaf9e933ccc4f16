import Petrel

/// The `bgp` section: how this instance announces its VIP addresses to the routers.
/// petreld renders it into a BIRD 2 config (see docs/scale-out.md); each VIP address
/// is announced as a host route while it can be served.
public struct BGPConfiguration: Equatable, Sendable {
    /// This instance's AS number (every instance of a tier usually shares one).
    public var localASN: UInt32
    /// The BGP identifier: an IPv4 address unique among the routers' peers.
    public var routerID: IPAddress
    /// Seconds without a message before a session is declared down (RFC 4271: at least 3).
    public var holdTime: Int
    /// Seconds between keepalives; at most a third of the hold time.
    public var keepaliveTime: Int
    /// Seconds between attempts to open a session that is down.
    public var connectRetryTime: Int
    /// Seconds petreld keeps forwarding after withdrawing on SIGTERM, so routers move traffic away first.
    public var drainTime: Int
    /// Standard communities (`ASN:value`) attached to every announcement.
    public var communities: [Community]
    /// MULTI_EXIT_DISC attached to every announcement, when set.
    public var med: UInt32?
    /// The routers, in file order.
    public var neighbors: [Neighbor]
    /// The BIRD daemon petreld drives.
    public var bird: Bird

    public init(localASN: UInt32, routerID: IPAddress, neighbors: [Neighbor], holdTime: Int = Defaults.holdTime,
                keepaliveTime: Int? = nil, connectRetryTime: Int = Defaults.connectRetryTime,
                drainTime: Int = Defaults.drainTime, communities: [Community] = [], med: UInt32? = nil,
                bird: Bird = Bird()) {
        self.localASN = localASN
        self.routerID = routerID
        self.neighbors = neighbors
        self.holdTime = holdTime
        self.keepaliveTime = keepaliveTime ?? max(1, holdTime / 3)
        self.connectRetryTime = connectRetryTime
        self.drainTime = drainTime
        self.communities = communities
        self.med = med
        self.bird = bird
    }

    /// One BGP peer: a router that learns the VIP addresses of its own address family.
    public struct Neighbor: Equatable, Sendable {
        public var address: IPAddress
        public var asn: UInt32
        /// The next hop announced to this neighbor; nil means this end's session address.
        public var nextHop: IPAddress?

        public init(address: IPAddress, asn: UInt32, nextHop: IPAddress? = nil) {
            self.address = address
            self.asn = asn
            self.nextHop = nextHop
        }
    }

    /// A standard (RFC 1997) community: two 16-bit halves.
    public struct Community: Equatable, Sendable, CustomStringConvertible {
        public var asn: UInt16
        public var value: UInt16

        public init(asn: UInt16, value: UInt16) {
            self.asn = asn
            self.value = value
        }

        public var description: String { "\(asn):\(value)" }
    }

    /// Where BIRD's program, control socket and generated config are.
    public struct Bird: Equatable, Sendable {
        /// The `bird` executable petreld starts when no BIRD answers on the control socket.
        public var binary: String
        /// BIRD's control socket; petreld reconfigures and queries BIRD through it.
        public var controlSocket: String
        /// The config file petreld writes for BIRD (it is replaced on every change).
        public var configFile: String

        public init(binary: String = Defaults.birdBinary, controlSocket: String = Defaults.birdControlSocket,
                    configFile: String = Defaults.birdConfigFile) {
            self.binary = binary
            self.controlSocket = controlSocket
            self.configFile = configFile
        }
    }

    public enum Defaults {
        public static let holdTime = 9
        public static let connectRetryTime = 5
        public static let drainTime = 5
        public static let birdBinary = "/usr/sbin/bird"
        public static let birdControlSocket = "/run/petrel/bird.ctl"
        public static let birdConfigFile = "/run/petrel/bird.conf"
    }

    /// The ranges the loader accepts; config/README.md says why.
    public enum Limits {
        /// 0 and 4294967295 are reserved (RFC 7607, RFC 7300).
        public static let asn = 1...4_294_967_294
        /// AS_TRANS stands in for 4-byte numbers on old speakers (RFC 6793); no speaker may own it.
        public static let asTrans = 23_456
        /// RFC 4271: 0 (never expire) or at least 3 seconds; 0 would hide a dead instance, so it is refused.
        public static let holdTime = 3...65_535
        public static let keepaliveTime = 1...21_845
        public static let connectRetryTime = 1...65_535
        public static let drainTime = 0...3_600
        public static let med = 0...4_294_967_295
        public static let communityHalf = 0...65_535
        public static let maxNeighbors = 32
    }
}
