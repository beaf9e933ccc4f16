import Foundation
import Glibc

/// Pins the calling thread to CPUs, so that per-CPU maps (connection tables, flow
/// caches) and timings stay on one CPU. Used by the benchmark and by tests.
public enum ThreadAffinity {
    public static var onlineCPUs: Int { max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    public static func pin(toCPU cpu: Int) throws {
        try set([cpu])
    }

    /// Lets the calling thread run on every online CPU again.
    public static func unpin() {
        try? set(Array(0..<onlineCPUs))
    }

    private typealias SchedSetAffinity = @convention(c) (pid_t, Int, UnsafeRawPointer) -> Int32

    private static func set(_ cpus: [Int]) throws {
        // glibc's sched_setaffinity is a _GNU_SOURCE declaration that the Glibc module
        // does not export: looked up by name.
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sched_setaffinity") else {
            throw ThreadAffinityError("glibc has no sched_setaffinity")
        }
        // A cpu_set_t: one bit per CPU, 1024 CPUs.
        var mask = [UInt8](repeating: 0, count: 128)
        for cpu in cpus { mask[cpu / 8] |= UInt8(1 << (cpu % 8)) }
        // pid 0: the calling thread only.
        if unsafeBitCast(symbol, to: SchedSetAffinity.self)(0, mask.count, &mask) != 0 {
            throw ThreadAffinityError("pin thread to CPUs \(cpus): \(String(cString: strerror(errno)))")
        }
    }
}

public struct ThreadAffinityError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
