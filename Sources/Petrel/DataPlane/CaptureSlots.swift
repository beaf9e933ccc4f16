import CPetrelABI
import Foundation
import PetrelBPF

/// The data plane's capture slots (bpf/lib/capture.h): each running capture owns
/// one, with its filter in capture_filters and its bit in capture_slots_active.
/// `@unchecked Sendable`: `active` is read and written only under `lock`.
public final class CaptureSlots: @unchecked Sendable {
    /// Captures that can run at once.
    public static let count = Int(PETREL_CAPTURE_SLOTS)

    /// What a slot's data-plane counters say, summed over the CPUs.
    public struct Counts: Sendable, Equatable {
        /// Packets that matched the filter (before 1-in-N sampling).
        public var matched: UInt64 = 0
        /// Records written to the ring.
        public var recorded: UInt64 = 0
        /// Records lost because the ring was full.
        public var lost: UInt64 = 0

        public init(matched: UInt64 = 0, recorded: UInt64 = 0, lost: UInt64 = 0) {
            self.matched = matched
            self.recorded = recorded
            self.lost = lost
        }
    }

    private let filters: BPFMap
    private let counts: BPFMap
    private let activeWord: BPFMap
    /// The ring buffer the records arrive in (read it with BPFRingBufferReader).
    public let ring: BPFMap
    private let lock = NSLock()
    private var active: UInt32 = 0

    init(maps: BalancerMaps) {
        filters = maps.captureFilters
        counts = maps.captureCounts
        activeWord = maps.captureActive
        ring = maps.captureRing
    }

    /// Stops every capture a previous process may have left running (its slots' bits in pinned maps).
    public func reset() throws(PetrelError) {
        lock.lock()
        defer { lock.unlock() }
        active = 0
        try kernel { try activeWord.update(UInt32(0), UInt32(0)) }
    }

    /// Claims a free slot and starts it with `filter`; nil when every slot is taken.
    func start(_ filter: petrel_capture_filter) throws(PetrelError) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard let slot = (0..<CaptureSlots.count).first(where: { active & (1 << UInt32($0)) == 0 }) else { return nil }
        try kernel {
            try counts.updatePerCPU(UInt32(slot), petrel_capture_counts())
            try filters.update(UInt32(slot), filter)
            try activeWord.update(UInt32(0), active | 1 << UInt32(slot))
        }
        active |= 1 << UInt32(slot)
        return slot
    }

    /// Stops a slot: the data plane stops selecting for it at once.
    public func stop(_ slot: Int) throws(PetrelError) {
        lock.lock()
        defer { lock.unlock() }
        active &= ~(1 << UInt32(slot))
        try kernel { try activeWord.update(UInt32(0), active) }
    }

    /// Starts reading the records (CapturedPacket(record:)) on a thread of its own. The data plane
    /// wakes it for batches only; it also reads the ring every PETREL_CAPTURE_POLL_MS.
    public func reader(threadName: String, onRecord: @escaping BPFRingBufferReader.RecordHandler) throws(PetrelError) -> BPFRingBufferReader {
        try kernel { try BPFRingBufferReader(map: ring, threadName: threadName, drainEveryMilliseconds: Int32(PETREL_CAPTURE_POLL_MS), onRecord: onRecord) }
    }

    /// Slots running now.
    public var running: Int { lock.withLock { active.nonzeroBitCount } }

    /// The slot's counters, summed over the CPUs.
    public func counts(_ slot: Int) throws(PetrelError) -> Counts {
        try kernel {
            try counts.lookupPerCPU(UInt32(slot), as: petrel_capture_counts.self).reduce(into: Counts()) {
                $0.matched += $1.matched
                $0.recorded += $1.recorded
                $0.lost += $1.lost
            }
        }
    }
}
