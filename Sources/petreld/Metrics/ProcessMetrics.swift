import Foundation
import Glibc

/// petreld's own resources, read from /proc/self, under the names Prometheus
/// client libraries use (`process_*`), so standard dashboards and alerts work.
struct ProcessMetrics {
    var cpuSeconds: Double
    var startTimeSeconds: Double
    var residentBytes: Double
    var virtualBytes: Double
    var threads: Double
    var openFDs: Double
    var maxFDs: Double

    /// Reads the current values; nil when /proc is not readable.
    static func read() -> ProcessMetrics? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name (which may hold spaces), starting at field 3 (state).
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        func field(_ number: Int) -> Double { Double(fields[number - 3]) ?? 0 }
        guard fields.count >= 22 else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        return ProcessMetrics(
            cpuSeconds: (field(14) + field(15)) / ticks,
            startTimeSeconds: bootTime() + field(22) / ticks,
            residentBytes: field(24) * pageSize,
            virtualBytes: field(23),
            threads: field(20),
            openFDs: Double(openFileDescriptors()),
            maxFDs: limit.rlim_cur == rlim_t.max ? .infinity : Double(limit.rlim_cur))
    }

    func render(into page: inout MetricsPage) {
        page.counter("process_cpu_seconds_total", "CPU time petreld used, user and system, in seconds.", [([], cpuSeconds)])
        page.gauge("process_start_time_seconds", "When petreld started, in seconds since the Unix epoch.", [([], startTimeSeconds)])
        page.gauge("process_resident_memory_bytes", "petreld's resident memory in bytes.", [([], residentBytes)])
        page.gauge("process_virtual_memory_bytes", "petreld's virtual memory in bytes.", [([], virtualBytes)])
        page.gauge("process_threads", "petreld's threads.", [([], threads)])
        page.gauge("process_open_fds", "File descriptors petreld has open.", [([], openFDs)])
        page.gauge("process_max_fds", "petreld's limit on open file descriptors (RLIMIT_NOFILE).", [([], maxFDs)])
    }

    /// Entries of /proc/self/fd, not counting the descriptor used to list them.
    private static func openFileDescriptors() -> Int {
        guard let directory = opendir("/proc/self/fd") else { return 0 }
        defer { closedir(directory) }
        let own = dirfd(directory)
        var count = 0
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard let fd = Int32(name), fd != own else { continue }
            count += 1
        }
        return count
    }

    /// The boot time (btime in /proc/stat), in seconds since the epoch.
    private static func bootTime() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        return 0
    }
}
