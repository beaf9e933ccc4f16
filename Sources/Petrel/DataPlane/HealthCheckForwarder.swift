import CPetrelABI
import PetrelBPF
import PetrelObjects

/// The health-check forwarding program (`bpf/healthcheck.bpf.c`) on the
/// balancer's interface, as a tc egress filter. A socket whose mark is
/// `mark(forTarget:)` has its packets encapsulated to that target's real exactly
/// as the balancer would, so a probe connected to a VIP reaches one chosen real.
/// `@unchecked Sendable`: every stored property is a constant; map writes are the kernel's to order.
public final class HealthCheckForwarder: @unchecked Sendable {
    public static let programName = "petrel_health_forward"
    /// The tc filter's handle and priority: fixed, so a restart replaces the filter.
    static let filterHandle: UInt32 = 0x50e7
    static let filterPriority: UInt32 = 0x50e7
    /// Target ids are the low 16 bits of the mark (0 is not used).
    public static let maxTargets = 0xffff

    public let interface: String
    private let object: BPFObject
    private let program: BPFProgram
    private let targets: BPFMap
    private let config: BPFMap
    private let counters: BPFMap

    /// What happened to marked packets.
    public enum Outcome: UInt32, CaseIterable, Sendable {
        case rx = 0, encapsulated, dropNoTarget, dropNoConfig, dropNotIP, dropFamily, dropTooBig, dropEncapFailed

        public var name: String {
            switch self {
            case .rx: "rx"
            case .encapsulated: "encapsulated"
            case .dropNoTarget: "drop_no_target"
            case .dropNoConfig: "drop_no_config"
            case .dropNotIP: "drop_not_ip"
            case .dropFamily: "drop_family"
            case .dropTooBig: "drop_too_big"
            case .dropEncapFailed: "drop_encap_failed"
            }
        }
    }

    /// Loads the program and attaches it to the interface's egress (in the calling
    /// thread's network namespace), replacing an earlier Petrel forwarder there.
    public init(interface: String) throws(PetrelError) {
        self.interface = interface
        (object, program, targets, config, counters) = try kernel {
            let object = try BPFObject(name: "petrel_healthcheck", elf: EmbeddedBPFObject.healthcheck.bytes)
            try object.load()
            return (object, try object.program(named: HealthCheckForwarder.programName), try object.map(named: "health_targets"),
                    try object.map(named: "health_config"), try object.map(named: "health_stats"))
        }
        try kernel {
            try TCAttachment.attach(program, to: try NetworkInterface(named: interface), direction: .egress,
                                    handle: Self.filterHandle, priority: Self.filterPriority)
        }
    }

    /// The socket mark that sends a probe to target `id` (1...maxTargets).
    public static func mark(forTarget id: Int) -> UInt32 {
        precondition(id > 0 && id <= maxTargets, "health-check target id out of range")
        return PETREL_HEALTH_MARK_TAG | UInt32(id)
    }

    /// Writes the MACs, MTU and outer source prefixes: the balancer's own settings.
    public func configure(_ settings: ForwardingSettings) throws(PetrelError) {
        try settings.validate()
        try kernel { try config.update(UInt32(0), settings.abiConfig) }
    }

    /// Points target `id` at a real: probes marked with `mark(forTarget: id)` go there.
    public func setTarget(_ id: Int, real address: IPAddress) throws(PetrelError) {
        var real = petrel_real()
        real.addr_be = address.abiWords
        real.family = address.abiFamily
        try kernel { try targets.update(Self.mark(forTarget: id), real) }
    }

    public func removeTarget(_ id: Int) throws(PetrelError) {
        _ = try kernel { try targets.delete(Self.mark(forTarget: id)) }
    }

    /// The counters, summed over the CPUs.
    public func stats() throws(PetrelError) -> [Outcome: UInt64] {
        try kernel {
            var result: [Outcome: UInt64] = [:]
            for outcome in Outcome.allCases {
                result[outcome] = try counters.lookupPerCPU(outcome.rawValue, as: UInt64.self).reduce(0, +)
            }
            return result
        }
    }

    /// Removes the filter from the interface (the clsact qdisc and other filters stay).
    public func detach() throws(PetrelError) {
        try kernel {
            _ = try TCAttachment.detach(from: try NetworkInterface(named: interface), direction: .egress,
                                        handle: Self.filterHandle, priority: Self.filterPriority)
        }
    }

    /// Whether this forwarder's filter is on the interface.
    public func isAttached() -> Bool {
        guard let interface = try? NetworkInterface(named: interface) else { return false }
        return TCAttachment.attachedProgramID(on: interface, direction: .egress, handle: Self.filterHandle, priority: Self.filterPriority) != nil
    }
}
