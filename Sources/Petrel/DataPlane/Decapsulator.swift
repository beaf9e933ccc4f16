import CPetrelABI
import PetrelBPF
import PetrelObjects

/// The decapsulation program for the reals: strips the IP-in-IP header of
/// packets addressed to one of `localAddresses` and hands the inner packet to
/// the kernel. Once attached it stays attached after this process exits.
public final class Decapsulator: @unchecked Sendable {
    public static let programName = "petrel_decap"
    /// The loaded program, for BPF_PROG_TEST_RUN.
    public let program: BPFProgram
    public let localAddresses: [IPAddress]
    private let object: BPFObject
    private let addresses: BPFMap
    private let counters: BPFMap

    /// What happened to the packets the decapsulator saw: enum petrel_decap_stat, in
    /// its order and by its names (pinned by CounterABITests).
    public enum Outcome: UInt32, CaseIterable, Sendable {
        case rx = 0, decapsulated, passNotTunnel, passNotLocal, passFragment, dropMalformed, dropAdjustFailed

        public var name: String {
            switch self {
            case .rx: "rx"
            case .decapsulated: "decapsulated"
            case .passNotTunnel: "pass_not_tunnel"
            case .passNotLocal: "pass_not_local"
            case .passFragment: "pass_fragment"
            case .dropMalformed: "drop_malformed"
            case .dropAdjustFailed: "drop_adjust_failed"
            }
        }
    }

    public init(localAddresses: [IPAddress]) throws(PetrelError) {
        self.localAddresses = localAddresses
        (object, program, addresses, counters) = try kernel {
            let object = try BPFObject(name: "petrel_decap", elf: EmbeddedBPFObject.decap.bytes)
            try object.load()
            return (object, try object.program(named: Decapsulator.programName),
                    try object.map(named: "decap_addrs"), try object.map(named: "decap_stats"))
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
