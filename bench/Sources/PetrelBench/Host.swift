import Foundation
import Glibc
import PetrelTestSupport

/// The few things the harness asks of the machine: CPUs, clocks, memory,
/// commands. Kept here so the measuring code reads as measuring.
enum Host {
    // MARK: CPUs

    /// (Pinning a thread to a CPU: ThreadAffinity, shared with the tests.)
    static var onlineCPUs: Int { ThreadAffinity.onlineCPUs }

    // MARK: Clocks

    /// Monotonic wall-clock time in nanoseconds.
    static func now() -> UInt64 { clock(CLOCK_MONOTONIC) }

    /// CPU time the calling thread has used (user and kernel), in nanoseconds.
    /// Time the thread spends descheduled does not count.
    static func threadCPUTime() -> UInt64 { clock(CLOCK_THREAD_CPUTIME_ID) }

    private static func clock(_ id: clockid_t) -> UInt64 {
        var time = timespec()
        clock_gettime(id, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    // MARK: Memory

    /// A field of /proc/self/status in kB, e.g. "VmHWM" (peak resident set).
    static func statusKilobytes(_ field: String) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        }
        return nil
    }

    // MARK: Machine

    static func machineInfo(packetSize: Int, flows: Int, vips: Int, reals: Int) -> MachineInfo {
        var name = utsname()
        uname(&name)
        let kernel = withUnsafeBytes(of: &name.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let swift = (try? Host.run(["swift", "--version"]).split(separator: "\n").first.map(String.init)) ?? nil
        return MachineInfo(
            kernel: kernel, cpuModel: model, cores: onlineCPUs,
            date: ISO8601DateFormatter().string(from: Date()),
            packetSize: packetSize, flows: flows, vips: vips, reals: reals,
            swiftVersion: swift ?? "unknown")
    }

    // MARK: Commands

    /// Runs a command to completion and returns its standard output; throws with
    /// its standard error if it fails.
    @discardableResult
    static func run(_ arguments: [String], allowFailure: Bool = false) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        // Read before waiting: a full pipe would block the child.
        let outData = output.fileHandleForReading.readDataToEndOfFile()
        let errData = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let out = String(decoding: outData, as: UTF8.self)
        if process.terminationStatus != 0 && !allowFailure {
            throw HostError("\(arguments.joined(separator: " ")) exited with \(process.terminationStatus): \(String(decoding: errData, as: UTF8.self))")
        }
        return out
    }
}

struct HostError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Progress on standard error, so standard output stays clean for JSON.
enum Progress {
    private static let start = Host.now()

    static func say(_ message: String) {
        let origin = start  // a lazy static: read it before the clock
        let seconds = Double(Host.now() - origin) / 1e9
        FileHandle.standardError.write(Data((String(format: "[%6.1fs] ", seconds) + message + "\n").utf8))
    }

    static func warn(_ message: String) {
        say("WARNING: " + message)
    }
}

// MARK: Statistics

extension Array where Element == Double {
    /// The middle value (the mean of the two middle ones for an even count); nil when empty.
    var median: Double? {
        guard !isEmpty else { return nil }
        let sorted = self.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}

/// Rounds for display and JSON: figures are not more precise than this.
func rounded(_ value: Double?, _ places: Int = 2) -> Double? {
    guard let value, value.isFinite else { return nil }
    let scale = pow(10, Double(places))
    return (value * scale).rounded() / scale
}
