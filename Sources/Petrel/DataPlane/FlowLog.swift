import CPetrelABI
import Foundation
import PetrelBPF

/// Why the data plane chose a real afresh for a flow (enum petrel_flow_reason).
/// A connection-table hit is not a decision and is never logged.
public enum FlowDecisionReason: String, Sendable, Codable, CaseIterable {
    /// A new flow placed by the VIP's Maglev ring (a SYN, a UDP flow's first packet).
    case ring
    /// A mid-connection TCP packet that no connection table knew (evicted, or
    /// the tables were lost): placed again by the ring, perhaps on another real.
    case ringAfterMiss = "ring_after_miss"
    /// A QUIC short header sent to the real its connection ID names (every such
    /// packet is decided on its own: no table is involved).
    case quicConnectionID = "quic_cid"
    /// The VIP's source-prefix routes chose the real.
    case sourcePrefix = "source_prefix"

    init?(abi: UInt8) {
        switch UInt32(abi) {
        case PETREL_FLOW_REASON_RING.rawValue: self = .ring
        case PETREL_FLOW_REASON_RING_AFTER_MISS.rawValue: self = .ringAfterMiss
        case PETREL_FLOW_REASON_QUIC_CID.rawValue: self = .quicConnectionID
        case PETREL_FLOW_REASON_SOURCE_PREFIX.rawValue: self = .sourcePrefix
        default: return nil
        }
    }
}

/// One logged decision, as the data plane wrote it (struct petrel_flow_record).
public struct FlowDecision: Sendable, Hashable {
    /// When, in CLOCK_MONOTONIC nanoseconds (`wallClock` converts).
    public var monotonicNanoseconds: UInt64
    public var flow: Flow
    /// The VIP's index in the data plane (`LoadBalancer.vip(atIndex:)` names it).
    public var vipIndex: UInt32
    public var real: IPAddress
    public var realId: UInt32
    public var reason: FlowDecisionReason
    /// False when the SYN-flood guard kept the decision out of the connection tables.
    public var remembered: Bool
    /// True on VIPs that bypass the tables (`lru_bypass`) and for QUIC connection-ID routes.
    public var tablesBypassed: Bool
    public var cpu: UInt32

    /// Decodes a record from the flow-log ring; nil if it is not one.
    public init?(record bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= MemoryLayout<petrel_flow_record>.size else { return nil }
        let record = bytes.loadUnaligned(as: petrel_flow_record.self)
        guard let flow = Flow(abi: record.flow),
              let real = IPAddress(abiWords: record.real_be, family: record.real_family),
              let reason = FlowDecisionReason(abi: record.reason) else { return nil }
        monotonicNanoseconds = record.time_ns
        self.flow = flow
        vipIndex = record.vip_index
        self.real = real
        realId = record.real_id
        self.reason = reason
        remembered = UInt32(record.flags) & PETREL_FLOW_NOT_REMEMBERED == 0
        tablesBypassed = UInt32(record.flags) & PETREL_FLOW_NO_TABLES != 0
        cpu = record.cpu
    }

    /// The decision's time on the wall clock (CLOCK_MONOTONIC mapped through now).
    public var wallClock: Date {
        var monotonic = timespec(), realtime = timespec()
        clock_gettime(CLOCK_MONOTONIC, &monotonic)
        clock_gettime(CLOCK_REALTIME, &realtime)
        let nowMonotonic = Double(monotonic.tv_sec) + Double(monotonic.tv_nsec) / 1e9
        let nowReal = Double(realtime.tv_sec) + Double(realtime.tv_nsec) / 1e9
        return Date(timeIntervalSince1970: nowReal - (nowMonotonic - Double(monotonicNanoseconds) / 1e9))
    }
}

// MARK: Following the log

extension LoadBalancer {
    /// Turns the data plane's flow log on (one decision in `sampleEvery` per CPU is
    /// written to its ring) or off (0). Off, a decision costs one array read.
    public func setFlowLog(sampleEvery: UInt32) throws(PetrelError) {
        var settings = petrel_flow_log_settings()
        settings.sample_every = sampleEvery
        try kernel { try maps.flowLogSettings.update(UInt32(0), settings) }
    }

    /// The data plane's current 1-in-N (0: off).
    public func flowLogSampling() throws(PetrelError) -> UInt32 {
        try kernel { try maps.flowLogSettings.lookup(UInt32(0), as: petrel_flow_log_settings.self)?.sample_every ?? 0 }
    }

    /// Reads the flow log's ring on a thread of its own, handing every decision to
    /// `onDecision` (on that thread; keep it short). The log stays off until
    /// `setFlowLog(sampleEvery:)` turns it on; stop the reader when done.
    public func readFlowLog(onDecision: @escaping @Sendable (FlowDecision) -> Void) throws(PetrelError) -> BPFRingBufferReader {
        try kernel {
            try BPFRingBufferReader(map: maps.flowLog, threadName: "petrel.flowlog",
                                    drainEveryMilliseconds: Int32(PETREL_FLOW_LOG_DRAIN_MS)) { bytes in
                if let decision = FlowDecision(record: bytes) { onDecision(decision) }
            }
        }
    }
}
