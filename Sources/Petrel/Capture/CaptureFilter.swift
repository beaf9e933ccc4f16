import CPetrelABI

/// What `petrel capture` records and when it stops: the selection the data
/// plane applies (VIP, real, outcomes, family, protocol, 1 in N), which copy of
/// each packet, and the limits petreld enforces. `validate()` is the one place
/// its rules live; errors name the API's fields.
public struct CaptureFilter: Sendable, Equatable {
    /// Which copy of a packet is recorded.
    public enum Direction: String, Sendable, CaseIterable {
        /// As it arrived on the interface.
        case received
        /// As it left: encapsulated towards its real (forwarded packets only).
        case sent
        /// Both copies of a forwarded packet, the received copy of every other.
        case both

        var bits: UInt8 {
            switch self {
            case .received: UInt8(PETREL_CAPTURE_RECEIVED)
            case .sent: UInt8(PETREL_CAPTURE_SENT)
            case .both: UInt8(PETREL_CAPTURE_RECEIVED | PETREL_CAPTURE_SENT)
            }
        }
    }

    /// The packet's own IP protocol (an ICMP error about a TCP flow is `icmp`).
    public enum PacketProtocol: String, Sendable, CaseIterable {
        case tcp, udp
        /// ICMP and ICMPv6.
        case icmp

        var number: UInt8 {
            switch self {
            case .tcp: 6
            case .udp: 17
            case .icmp: 1  // the data plane counts ICMPv6 as ICMP (bpf/lib/capture.h)
            }
        }
    }

    /// The file format written.
    public enum Format: String, Sendable, CaseIterable {
        /// Classic pcap: one link type, no comments.
        case pcap
        /// pcapng: each packet carries its outcome, VIP and real in a comment; received and sent copies are two interfaces.
        case pcapng
    }

    public static let maxCount = 1_000_000
    public static let maxSampleEvery = 1_000_000
    public static let minSnapLength = 64
    public static let maxSnapLength = Int(PETREL_CAPTURE_SNAP_LEN)
    /// Longest capture petreld allows unless told otherwise (`petreld --capture-max-seconds`).
    public static let defaultMaxSeconds = 3_600

    public var vip: VipKey?
    public var real: IPAddress?
    /// Outcomes wanted (`forward`, `pass_*`, `drop_*`); empty: every outcome.
    public var outcomes: Set<StatReason> = []
    public var family: AddressFamily?
    public var packetProtocol: PacketProtocol?
    /// Record 1 of every N matching packets (per CPU).
    public var sampleEvery = 1
    public var direction = Direction.received
    /// Stop after this many packets recorded.
    public var count = 100
    /// Stop after this many seconds.
    public var seconds = 60
    /// Bytes recorded of each packet at most.
    public var snapLength = CaptureFilter.maxSnapLength
    public var format = Format.pcapng

    public init() {}

    /// Checks every rule; `maxSeconds` is petreld's bound on a capture's life.
    public func validate(maxSeconds: Int = CaptureFilter.defaultMaxSeconds) throws(PetrelError) {
        if let bad = outcomes.first(where: { !$0.isOutcome }) {
            throw .invalid(field: "outcome", value: bad.name, expected: "must be an outcome: \(CaptureFilter.outcomeNames)")
        }
        guard (1...CaptureFilter.maxSampleEvery).contains(sampleEvery) else {
            throw .invalid(field: "sample", value: "\(sampleEvery)", expected: "must be 1 to \(CaptureFilter.maxSampleEvery) (record 1 packet in N)")
        }
        guard (1...CaptureFilter.maxCount).contains(count) else {
            throw .invalid(field: "count", value: "\(count)", expected: "must be 1 to \(CaptureFilter.maxCount) packets")
        }
        guard (1...maxSeconds).contains(seconds) else {
            throw .invalid(field: "seconds", value: "\(seconds)", expected: "must be 1 to \(maxSeconds) seconds")
        }
        guard (CaptureFilter.minSnapLength...CaptureFilter.maxSnapLength).contains(snapLength) else {
            throw .invalid(field: "snaplen", value: "\(snapLength)",
                           expected: "must be \(CaptureFilter.minSnapLength) to \(CaptureFilter.maxSnapLength) bytes")
        }
        if let vip, let family, vip.address.family != family {
            throw .invalid(field: "family", value: family.rawValue, expected: "must be the family of vip \(vip) (or left out)")
        }
        if direction == .sent, !outcomes.isEmpty, !outcomes.contains(.forward) {
            throw .invalid(field: "direction", value: "sent",
                           expected: "records forwarded packets only, and outcome leaves out forward: use received or both")
        }
    }

    /// `forward`, then the pass and drop reasons; plus the groups `pass` and `drop`.
    public static var outcomeNames: String {
        (["pass", "drop"] + StatReason.allCases.filter(\.isOutcome).map(\.name)).joined(separator: ", ")
    }

    /// An outcome name, or a group (`pass`, `drop`), as reasons; nil for an unknown name.
    public static func outcomes(named name: String) -> Set<StatReason>? {
        switch name {
        case "pass": Set(StatReason.allCases.filter { $0.isOutcome && $0.name.hasPrefix("pass_") })
        case "drop": Set(StatReason.allCases.filter { $0.isOutcome && $0.name.hasPrefix("drop_") })
        default: StatReason.allCases.first { $0.isOutcome && $0.name == name }.map { [$0] }
        }
    }

    /// The data plane's filter for this selection, given the VIP's stats index and the real's id.
    func abiFilter(vipIndex: UInt32?, realId: UInt32?) -> petrel_capture_filter {
        var filter = petrel_capture_filter()
        let wanted = outcomes.isEmpty ? Set(StatReason.allCases.filter(\.isOutcome)) : outcomes
        filter.outcomes = wanted.reduce(UInt64(0)) { $1.rawValue < 64 ? $0 | (1 << UInt64($1.rawValue)) : $0 }
        filter.vip = vipIndex.map { $0 + 1 } ?? 0
        filter.real_id = realId ?? 0
        filter.sample_every = UInt32(sampleEvery)
        filter.family = switch family {
        case .ipv4: UInt8(PETREL_FAMILY_IPV4)
        case .ipv6: UInt8(PETREL_FAMILY_IPV6)
        case nil: 0
        }
        filter.protocol = packetProtocol?.number ?? 0
        filter.directions = direction.bits
        return filter
    }
}
