import CPetrelABI

/// Packets and bytes, summed over every CPU.
public struct Traffic: Hashable, Sendable, Codable {
    public var packets: UInt64
    public var bytes: UInt64

    public init(packets: UInt64 = 0, bytes: UInt64 = 0) {
        self.packets = packets
        self.bytes = bytes
    }
}

/// The data plane's global counters (enum petrel_stat, in its order; each name is
/// the C constant's after PETREL_STAT_, in lower case: CounterABITests pins both). RX counts every packet;
/// each packet also lands in exactly one outcome (forward, reply_*, pass_*, drop_*).
/// The event_* counters are extra facts about how the real was chosen.
public enum StatReason: UInt32, CaseIterable, Sendable, Codable {
    case rx = 0
    case forward
    case passNotIP
    case passNotVip
    case passFragment
    case passUnsupported
    case passICMP
    case dropMalformed
    case dropNoReal
    case dropTooBig
    case dropEncapFailed
    case dropNoConfig
    case eventNewConnection
    case eventConnectionHit
    case eventSharedTableHit
    case eventLRUMiss
    case eventICMPForward
    case eventNoCPUTable
    case eventSynFlood
    case eventGUEForward
    case eventQuicLongHeader
    case eventQuicCIDRouted
    case eventQuicCIDUnknown
    case eventQuicCIDZero
    case eventQuicCIDMalformed
    case eventSourceRouted
    case eventFlowLogCandidate
    case eventFlowLogEmitted
    case eventFlowLogLost
    case replyEcho
    case replyTooBig
    case eventICMPRateLimited
    case eventFlowCacheHit
    case eventVipCacheMiss

    /// The name used in metrics, the CLI and JSON.
    public var name: String {
        switch self {
        case .rx: "rx"
        case .forward: "forward"
        case .passNotIP: "pass_not_ip"
        case .passNotVip: "pass_not_vip"
        case .passFragment: "pass_fragment"
        case .passUnsupported: "pass_unsupported"
        case .passICMP: "pass_icmp"
        case .dropMalformed: "drop_malformed"
        case .dropNoReal: "drop_no_real"
        case .dropTooBig: "drop_too_big"
        case .dropEncapFailed: "drop_encap_failed"
        case .dropNoConfig: "drop_no_config"
        case .eventNewConnection: "event_new_connection"
        case .eventConnectionHit: "event_connection_hit"
        case .eventSharedTableHit: "event_shared_table_hit"
        case .eventLRUMiss: "event_lru_miss"
        case .eventICMPForward: "event_icmp_forward"
        case .eventNoCPUTable: "event_no_cpu_table"
        case .eventSynFlood: "event_syn_flood"
        case .eventGUEForward: "event_gue_forward"
        case .eventQuicLongHeader: "event_quic_long_header"
        case .eventQuicCIDRouted: "event_quic_cid_routed"
        case .eventQuicCIDUnknown: "event_quic_cid_unknown"
        case .eventQuicCIDZero: "event_quic_cid_zero"
        case .eventQuicCIDMalformed: "event_quic_cid_malformed"
        case .eventSourceRouted: "event_source_routed"
        case .eventFlowLogCandidate: "event_flow_log_candidate"
        case .eventFlowLogEmitted: "event_flow_log_emitted"
        case .eventFlowLogLost: "event_flow_log_lost"
        case .replyEcho: "reply_echo"
        case .replyTooBig: "reply_too_big"
        case .eventICMPRateLimited: "event_icmp_rate_limited"
        case .eventFlowCacheHit: "event_flow_cache_hit"
        case .eventVipCacheMiss: "event_vip_cache_miss"
        }
    }

    /// Whether this counter is a packet outcome (the outcomes add up to rx): by the
    /// header's naming, `forward` and every `reply_*`, `pass_*` and `drop_*` reason.
    public var isOutcome: Bool {
        name == "forward" || name.hasPrefix("reply_") || name.hasPrefix("pass_") || name.hasPrefix("drop_")
    }

    /// How many reasons the data plane counts (PETREL_STAT_COUNT).
    public static let count = Int(PETREL_STAT_COUNT.rawValue)
}

/// A snapshot of every counter.
public struct Stats: Sendable {
    public var global: [StatReason: UInt64]
    public var vips: [VipKey: Traffic]
    public var reals: [IPAddress: Traffic]

    public subscript(reason: StatReason) -> UInt64 { global[reason] ?? 0 }

    /// Sum of all outcome counters: equals rx when no packet was in flight.
    public var outcomes: UInt64 { StatReason.allCases.filter(\.isOutcome).reduce(0) { $0 + self[$1] } }
}
