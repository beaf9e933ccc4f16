/// The BGP part of `GET /v1/status`: each session and each VIP address's announcement.
public struct BGPStatusDocument: Codable, Sendable, Equatable {
    public var localASN: UInt32
    public var routerID: String
    /// True from SIGTERM on: everything is withdrawn and petreld waits `drain_time` before stopping.
    public var draining: Bool
    /// The last error talking to BIRD, nil once it answers again.
    public var daemonError: String?
    public var sessions: [Session]
    public var addresses: [Address]

    public init(localASN: UInt32, routerID: String, draining: Bool, daemonError: String?, sessions: [Session], addresses: [Address]) {
        self.localASN = localASN
        self.routerID = routerID
        self.draining = draining
        self.daemonError = daemonError
        self.sessions = sessions
        self.addresses = addresses
    }

    public struct Session: Codable, Sendable, Equatable {
        public var neighbor: String
        public var asn: UInt32
        /// BIRD's BGP state: Established, Active, Connect, OpenSent, OpenConfirm, Idle, or Down.
        public var state: String

        public init(neighbor: String, asn: UInt32, state: String) {
            self.neighbor = neighbor
            self.asn = asn
            self.state = state
        }

        public var established: Bool { state == "Established" }
    }

    public struct Address: Codable, Sendable, Equatable {
        public var address: String
        /// `announced`, `waiting_for_session` (wanted, but no session of its family is up) or `withdrawn`.
        public var state: String
        /// Why it is withdrawn: `not_attached`, `no_usable_real`, `stopping`, `daemon_error`.
        public var reason: String?

        public init(address: String, state: String, reason: String?) {
            self.address = address
            self.state = state
            self.reason = reason
        }
    }

    enum CodingKeys: String, CodingKey {
        case localASN = "local_asn", routerID = "router_id", draining, daemonError = "daemon_error", sessions, addresses
    }
}
