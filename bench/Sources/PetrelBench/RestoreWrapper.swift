import Petrel
import PetrelBPF
import PetrelBenchObjects

/// bench/bpf/bench_restore.bpf.c loaded: a program that undoes the balancer's
/// encapsulation and tail-calls whatever program is put in its target slot, so
/// BPF_PROG_TEST_RUN with many repetitions feeds that program the same packet
/// every time.
final class RestoreWrapper {
    /// Counters of bench_restore.bpf.c (enum bench_restore_stat).
    enum Counter: UInt32, CaseIterable {
        case restoredV4Outer = 0, restoredV6Outer, untouched, restoreFailed, tailCallFailed
    }

    let program: BPFProgram
    /// Re-encapsulates an IPv4 packet (4in4 with the balancer's source prefix), to price a restore.
    let pushProgram: BPFProgram
    private let object: BPFObject
    private let target: BPFMap
    private let stats: BPFMap

    init(settings: ForwardingSettings, originalDestinationMAC: [UInt8], originalSourceMAC: [UInt8]) throws {
        object = try BPFObject(name: "bench_restore", elf: EmbeddedBPFObject.benchRestore.bytes)
        try object.load()
        program = try object.program(named: "petrel_bench_restore")
        pushProgram = try object.program(named: "petrel_bench_push")
        target = try object.map(named: "restore_target")
        stats = try object.map(named: "restore_stats")

        // struct bench_restore_config: two MACs, the outer IPv4 prefix, the outer IPv6 /64.
        var config = InlineArray<24, UInt8>(repeating: 0)
        let v4 = settings.encapSourceV4.bytes
        let v6 = settings.encapSourceV6.bytes
        let bytes = originalDestinationMAC + originalSourceMAC + v4 + Array(v6.prefix(8))
        for (i, byte) in bytes.enumerated() { config[i] = byte }
        try object.map(named: "restore_config").update(UInt32(0), config)
    }

    /// Makes the wrapper tail-call `program` from now on.
    func target(_ program: BPFProgram) throws {
        try target.setProgram(at: 0, to: program)
    }

    /// Every counter, summed over the CPUs.
    func counters() throws -> [Counter: UInt64] {
        var result: [Counter: UInt64] = [:]
        for counter in Counter.allCases {
            result[counter] = try stats.lookupPerCPU(counter.rawValue, as: UInt64.self).reduce(0, +)
        }
        return result
    }
}
