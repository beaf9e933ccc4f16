import Petrel

/// How one real of one VIP is checked: what a probe does, how often, and how
/// many results in a row change its state.
public struct HealthCheck: Hashable, Sendable {
    /// What a probe does. Every probe is addressed to the VIP (its address, and
    /// `port` or the VIP's port) and forwarded to one real by the data plane.
    public enum Kind: Hashable, Sendable {
        /// Not checked: the real is always up.
        case none
        /// A TCP connection is accepted.
        case tcp
        /// `GET path` answers with one of the expected status codes.
        case http(HTTP)
        /// A datagram with `payload` gets any datagram back.
        case udp(UDP)

        /// The config file's name: `none`, `tcp`, `http`, `udp`.
        public var name: String {
            switch self {
            case .none: "none"
            case .tcp: "tcp"
            case .http: "http"
            case .udp: "udp"
            }
        }
    }

    public struct HTTP: Hashable, Sendable {
        public var path: String
        public var expectedStatus: [Int]
        /// The Host header; nil sends the VIP's address.
        public var host: String?

        public init(path: String = Defaults.httpPath, expectedStatus: [Int] = Defaults.expectedStatus, host: String? = nil) {
            self.path = path
            self.expectedStatus = expectedStatus
            self.host = host
        }
    }

    public struct UDP: Hashable, Sendable {
        public var payload: [UInt8]
        public init(payload: [UInt8] = Array(Defaults.udpPayload.utf8)) { self.payload = payload }
    }

    public var kind: Kind
    /// The port probes go to; nil means the VIP's own port (a VIP on every port needs one).
    public var port: UInt16?
    /// Milliseconds from the start of one probe of a real to the start of the next.
    public var intervalMilliseconds: Int
    /// Milliseconds a probe may take before it counts as failed (`timeout`).
    public var timeoutMilliseconds: Int
    /// Consecutive successes that bring a down real back.
    public var rise: Int
    /// Consecutive failures that take an up real out.
    public var fall: Int

    public init(kind: Kind = .none, port: UInt16? = nil, intervalMilliseconds: Int = Defaults.intervalMilliseconds,
                timeoutMilliseconds: Int = Defaults.timeoutMilliseconds, rise: Int = Defaults.rise, fall: Int = Defaults.fall) {
        self.kind = kind
        self.port = port
        self.intervalMilliseconds = intervalMilliseconds
        self.timeoutMilliseconds = timeoutMilliseconds
        self.rise = rise
        self.fall = fall
    }

    /// No checking: what a VIP gets when the config says nothing.
    public static let none = HealthCheck()

    public var isEnabled: Bool { kind != .none }

    /// The settings a file may leave out.
    public enum Defaults {
        public static let intervalMilliseconds = 2000
        public static let timeoutMilliseconds = 1000
        public static let rise = 2
        public static let fall = 3
        public static let httpPath = "/"
        public static let expectedStatus = [200]
        public static let udpPayload = "petrel health check"
        /// Probes running at once, over every real of every VIP.
        public static let maxInFlight = 256
    }

    /// The ranges accepted; config/README.md gives the reasons.
    public enum Limits {
        /// 50 ms to 1 hour.
        public static let intervalMilliseconds = 50...3_600_000
        /// At least 10 ms; never longer than the interval (checked together).
        public static let timeoutMilliseconds = 10...3_600_000
        public static let rise = 1...100
        public static let fall = 1...100
        public static let httpStatus = 100...599
        public static let httpPathLength = 1...1024
        public static let udpPayloadLength = 1...1400
        /// Each probe in flight holds one socket.
        public static let maxInFlight = 1...4096
    }
}

/// Which check applies to which real: the file's top-level default, a VIP's
/// override and a real's override, each already merged over the one above it.
public struct HealthCheckPolicy: Hashable, Sendable {
    public var defaultCheck: HealthCheck
    public var vipChecks: [VipKey: HealthCheck]
    public var realChecks: [VipKey: [IPAddress: HealthCheck]]
    public var maxInFlight: Int

    public init(defaultCheck: HealthCheck = .none, vipChecks: [VipKey: HealthCheck] = [:],
                realChecks: [VipKey: [IPAddress: HealthCheck]] = [:], maxInFlight: Int = HealthCheck.Defaults.maxInFlight) {
        self.defaultCheck = defaultCheck
        self.vipChecks = vipChecks
        self.realChecks = realChecks
        self.maxInFlight = maxInFlight
    }

    /// The check for one real of one VIP. A VIP or real the file does not list
    /// (added through the admin API) gets its VIP's check, else the default.
    public func check(vip: VipKey, real: IPAddress) -> HealthCheck {
        realChecks[vip]?[real] ?? vipChecks[vip] ?? defaultCheck
    }

    /// Every enabled (VIP, real, check) of `vips`.
    public func targets(for vips: [Vip]) -> [HealthTarget] {
        vips.flatMap { vip in
            vip.reals.compactMap { real in
                let check = check(vip: vip.key, real: real.address)
                return check.isEnabled ? HealthTarget(vip: vip.key, real: real.address, check: check) : nil
            }
        }
    }

    public var anyEnabled: Bool {
        defaultCheck.isEnabled || vipChecks.values.contains(where: \.isEnabled)
            || realChecks.values.contains { $0.values.contains(where: \.isEnabled) }
    }
}

/// One real of one VIP under a check.
public struct HealthTarget: Hashable, Sendable {
    public var vip: VipKey
    public var real: IPAddress
    public var check: HealthCheck

    public init(vip: VipKey, real: IPAddress, check: HealthCheck) {
        self.vip = vip
        self.real = real
        self.check = check
    }

    public var key: VipReal { VipReal(vip: vip, real: real) }
    /// Where probes are addressed: the VIP's address and the check's (or the VIP's) port.
    public var port: UInt16 { check.port ?? vip.port }
}
