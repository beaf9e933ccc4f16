import Petrel

// The admin API's health documents: GET /v1/health, and the summary in /v1/status.

/// One real of one VIP: its operator weight and what health checks say of it.
public struct RealHealthDocument: Codable, Sendable {
    /// `tcp/198.18.100.1:80`.
    public var vip: String
    public var real: String
    /// The operator's weight (0: drained); health checks never change it.
    public var weight: UInt32
    /// The check's type: none, tcp, http or udp.
    public var check: String
    /// `up`, `down`, or `unchecked` (check type none).
    public var state: String
    /// Whether the real takes new connections: weight > 0 and not down.
    public var inService: Bool
    /// The last probe's result, e.g. `HTTP 200`, `timeout`, `refused`.
    public var lastResult: String?
    /// When the last probe ended (ISO 8601).
    public var lastProbe: String?
    /// When the state last changed, or checking began (ISO 8601).
    public var since: String?
    /// What made the last change, e.g. `refused (3 failures in a row)`.
    public var reason: String?
    public var wentDown: Int
    public var wentUp: Int

    public init(vip: String, real: String, weight: UInt32, check: String, state: String, inService: Bool, lastResult: String?,
                lastProbe: String?, since: String?, reason: String?, wentDown: Int, wentUp: Int) {
        self.vip = vip
        self.real = real
        self.weight = weight
        self.check = check
        self.state = state
        self.inService = inService
        self.lastResult = lastResult
        self.lastProbe = lastProbe
        self.since = since
        self.reason = reason
        self.wentDown = wentDown
        self.wentUp = wentUp
    }

    enum CodingKeys: String, CodingKey {
        case vip, real, weight, check, state, inService = "in_service", lastResult = "last_result", lastProbe = "last_probe"
        case since, reason, wentDown = "went_down", wentUp = "went_up"
    }
}

/// `GET /v1/health`.
public struct HealthDocument: Codable, Sendable {
    public var reals: [RealHealthDocument]
    /// VIPs with no real in service: their packets are dropped and counted as drop_no_real.
    public var vipsWithoutService: [String]
    public var probesPassed: UInt64
    public var probesFailed: UInt64
    /// Probes that were due while max_in_flight others ran, and waited.
    public var probesDelayed: UInt64
    public var probesInFlight: Int
    /// The probe forwarder's counters (rx, encapsulated, drop_*), when it runs.
    public var forwarder: [String: UInt64]?

    public init(reals: [RealHealthDocument], vipsWithoutService: [String], probesPassed: UInt64, probesFailed: UInt64,
                probesDelayed: UInt64, probesInFlight: Int, forwarder: [String: UInt64]?) {
        self.reals = reals
        self.vipsWithoutService = vipsWithoutService
        self.probesPassed = probesPassed
        self.probesFailed = probesFailed
        self.probesDelayed = probesDelayed
        self.probesInFlight = probesInFlight
        self.forwarder = forwarder
    }

    enum CodingKeys: String, CodingKey {
        case reals, vipsWithoutService = "vips_without_service", probesPassed = "probes_passed", probesFailed = "probes_failed"
        case probesDelayed = "probes_delayed", probesInFlight = "probes_in_flight", forwarder
    }
}

/// The health line of `GET /v1/status`.
public struct HealthSummaryDocument: Codable, Sendable {
    public var checked: Int
    public var up: Int
    public var down: Int
    public var vipsWithoutService: [String]

    public init(checked: Int, up: Int, down: Int, vipsWithoutService: [String]) {
        self.checked = checked
        self.up = up
        self.down = down
        self.vipsWithoutService = vipsWithoutService
    }

    enum CodingKeys: String, CodingKey {
        case checked, up, down, vipsWithoutService = "vips_without_service"
    }
}
