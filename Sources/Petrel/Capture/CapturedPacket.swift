import CPetrelABI

/// One copy of one packet as the data plane recorded it (struct petrel_capture_record).
public struct CapturedPacket: Sendable, Equatable {
    public enum Direction: String, Sendable {
        case received, sent
    }

    /// CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns).
    public var monotonicNanoseconds: UInt64
    /// Bit N: capture slot N selected this copy.
    public var slots: UInt32
    /// The VIP's stats index, nil when the packet met no VIP.
    public var vipIndex: UInt32?
    /// The real chosen, nil when none was.
    public var realId: UInt32?
    /// The packet's length on the wire.
    public var length: Int
    /// Its first bytes (at most PETREL_CAPTURE_SNAP_LEN).
    public var bytes: [UInt8]
    /// The packet's outcome (forward, pass_*, drop_*); nil for a reason this build does not know.
    public var outcome: StatReason?
    public var direction: Direction

    /// Decodes one ring-buffer record; nil if it is not one.
    public init?(record: UnsafeRawBufferPointer) {
        guard record.count >= MemoryLayout<petrel_capture_record>.size else { return nil }
        let raw = record.loadUnaligned(as: petrel_capture_record.self)
        monotonicNanoseconds = raw.time_ns
        slots = raw.slots
        vipIndex = raw.vip == 0 ? nil : raw.vip - 1
        realId = raw.real_id == 0 ? nil : raw.real_id
        length = Int(raw.length)
        let captured = min(Int(raw.captured), Int(PETREL_CAPTURE_SNAP_LEN))
        let offset = MemoryLayout<petrel_capture_record>.offset(of: \petrel_capture_record.data)!
        bytes = Array(record[offset..<(offset + captured)])
        outcome = StatReason(rawValue: UInt32(raw.reason))
        direction = UInt32(raw.direction) == PETREL_CAPTURE_SENT ? .sent : .received
    }
}
