import CPetrelABI
import PetrelBPF
import PetrelObjects

/// The decapsulation program for the reals: strips the IP-in-IP header, or the
/// outer IP and UDP headers of GUE variant 1 packets sent to `guePort`, of
/// packets addressed to one of `localAddresses` and hands the inner packet to
/// the kernel. Once attached it stays attached after this process exits.
/// `@unchecked Sendable`: every stored property is a constant; map writes are the kernel's to order.
public final class Decapsulator: @unchecked Sendable {
    public static let programName = "petrel_decap"
    /// The loaded program, for BPF_PROG_TEST_RUN.
    public let program: BPFProgram
    public let localAddresses: [IPAddress]
    /// The UDP port GUE packets arrive on (nil: GUE packets are not stripped).
    public let guePort: UInt16?
    /// The port the balancer sends GUE to unless configured otherwise.
    public static let defaultGUEPort = UInt16(PETREL_GUE_DEFAULT_PORT)
    private let object: BPFObject
    private let addresses: BPFMap
    private let counters: BPFMap
    private let settings: BPFMap

    /// What happened to the packets the decapsulator saw: enum petrel_decap_stat, in
    /// its order and by its names (pinned by CounterABITests).
    public enum Outcome: UInt32, CaseIterable, Sendable {
        case rx = 0, decapsulated, passNotTunnel, passNotLocal, passFragment, dropMalformed, dropAdjustFailed
        case decapsulatedGUE, dropGUEMalformed

        public var name: String {
            switch self {
            case .rx: "rx"
            case .decapsulated: "decapsulated"
            case .passNotTunnel: "pass_not_tunnel"
            case .passNotLocal: "pass_not_local"
            case .passFragment: "pass_fragment"
            case .dropMalformed: "drop_malformed"
            case .dropAdjustFailed: "drop_adjust_failed"
            case .decapsulatedGUE: "decapsulated_gue"
            case .dropGUEMalformed: "drop_gue_malformed"
            }
        }
    }

    /// `guePort`: strip GUE packets sent to this UDP port (the balancer's
    /// `gue_port`); nil leaves UDP alone.
    public init(localAddresses: [IPAddress], guePort: UInt16? = Decapsulator.defaultGUEPort) throws(PetrelError) {
        if guePort == 0 {
            throw .invalid(field: "gue_port", value: "0", expected: "must be a UDP port 1-65535 (nil leaves UDP alone)")
        }
        self.localAddresses = localAddresses
        self.guePort = guePort
        (object, program, addresses, counters, settings) = try kernel {
            let object = try BPFObject(name: "petrel_decap", elf: EmbeddedBPFObject.decap.bytes)
            try object.load()
            return (object, try object.program(named: Decapsulator.programName),
                    try object.map(named: "decap_addrs"), try object.map(named: "decap_stats"),
                    try object.map(named: "decap_settings"))
        }
        guard localAddresses.count <= addresses.maxEntries else {
            throw .limitExceeded(limit: "decapsulation addresses", requested: localAddresses.count, maximum: addresses.maxEntries)
        }
        try kernel {
            for address in localAddresses {
                var key = petrel_decap_addr()
                key.addr_be = address.abiWords
                key.family = address.abiFamily
                try addresses.update(key, UInt32(1))
            }
            var value = petrel_decap_settings()
            value.gue_port_be = (guePort ?? 0).bigEndian
            try settings.update(UInt32(0), value)
        }
    }

    /// Attaches to the interface (replacing an earlier Petrel decapsulator there).
    public func attach(interface name: String, mode: XDPMode = .native) throws(PetrelError) {
        try kernel {
            let interface = try NetworkInterface(named: name)
            try XDPAttachment.detach(program: Decapsulator.programName, from: interface)
            let copy = try BPFObject(name: "petrel_decap", elf: EmbeddedBPFObject.decap.bytes)
            try copy.reuse(map: "decap_addrs", from: addresses)
            try copy.reuse(map: "decap_stats", from: counters)
            try copy.reuse(map: "decap_settings", from: settings)
            try XDPAttachment.attach(object: copy, program: Decapsulator.programName, to: interface, mode: mode)
        }
    }

    /// Detaches any Petrel decapsulator from the interface.
    public static func detach(interface name: String) throws(PetrelError) {
        try kernel {
            _ = try XDPAttachment.detach(program: programName, from: try NetworkInterface(named: name))
        }
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
}
