import Glibc

/// Reads a config file once and whole, never in the middle of being written.
///
/// A file rewritten in place passes through states that are valid YAML but
/// only part of the config (the first VIPs of a list, say). No parser can tell
/// them from a short file, so the reader looks at the clock instead: it reads a
/// file only after it has been left unchanged for `settleInterval`, and refuses
/// it if it changed while it was being read. Writing a new file and renaming it
/// over the old one (what `config/README.md` recommends) is never seen half-done.
public enum ConfigFile {
    /// The largest config file accepted: 8 MiB, about 15,000 VIPs of 10 reals
    /// each in block style. A larger file is refused before anything is parsed.
    public static let maxBytes = 8 << 20
    /// A file modified more recently than this may still be being written: wait.
    public static let settleInterval = 0.5
    /// A file still changing after this long is refused.
    public static let settleTimeout = 5.0

    /// The whole text of the file at `path`, or one issue saying why it cannot be used.
    public static func read(path: String, settleInterval: Double = settleInterval,
                            settleTimeout: Double = settleTimeout) throws(ConfigError) -> String {
        func failure(_ message: String) -> ConfigError {
            ConfigError(issues: [ConfigIssue(file: path, line: 0, column: 0, field: "", message: "cannot read the config file: " + message)])
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else {
            switch errno {
            case ENOENT, ENOTDIR: throw failure("it does not exist")
            case EACCES, EPERM: throw failure("permission denied")
            default: throw failure(String(cString: strerror(errno)))
            }
        }
        defer { close(fd) }

        let deadline = monotonicNow() + settleTimeout
        while true {
            let before = try status(of: fd, failure)
            guard before.st_mode & S_IFMT == S_IFREG else {
                throw failure(before.st_mode & S_IFMT == S_IFDIR ? "it is a directory" : "it is not a regular file")
            }
            guard before.st_size <= maxBytes else {
                throw failure("it is \(before.st_size) bytes, more than the limit of \(maxBytes) bytes (\(maxBytes >> 20) MiB)")
            }
            let age = realtimeNow() - seconds(before.st_mtim)
            if age >= 0 && age < settleInterval {
                guard monotonicNow() + (settleInterval - age) <= deadline else {
                    throw failure("it kept changing for \(formatted(settleTimeout)) s; write a new file and rename it over the old one")
                }
                sleep(seconds: settleInterval - age)
                continue
            }
            let bytes = try readAll(fd, failure)
            let after = try status(of: fd, failure)
            // Written to while we read: what we have may be neither the old file nor the new.
            if bytes.count != Int(after.st_size) || !sameContent(before, after) {
                guard monotonicNow() + settleInterval <= deadline else {
                    throw failure("it changed while it was read; write a new file and rename it over the old one")
                }
                continue
            }
            guard let text = String(validating: bytes, as: UTF8.self) else { throw failure("it is not UTF-8 text") }
            return text
        }
    }

    // MARK: System calls

    private static func status(of fd: Int32, _ failure: (String) -> ConfigError) throws(ConfigError) -> stat {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure(String(cString: strerror(errno))) }
        return info
    }

    /// Reads from the start to the end, at most `maxBytes + 1` bytes (a file that grew is refused).
    private static func readAll(_ fd: Int32, _ failure: (String) -> ConfigError) throws(ConfigError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        var offset: off_t = 0
        while bytes.count <= maxBytes {
            let count = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure(String(cString: strerror(errno)))
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            offset += off_t(count)
        }
        guard bytes.count <= maxBytes else {
            throw failure("it grew past the limit of \(maxBytes) bytes (\(maxBytes >> 20) MiB) while it was read")
        }
        return bytes
    }

    private static func sameContent(_ a: stat, _ b: stat) -> Bool {
        a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec
            && a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec
    }

    private static func seconds(_ time: timespec) -> Double { Double(time.tv_sec) + Double(time.tv_nsec) / 1e9 }

    private static func realtimeNow() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return seconds(now)
    }

    private static func monotonicNow() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return seconds(now)
    }

    private static func sleep(seconds: Double) {
        var remaining = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var request = remaining
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }

    private static func formatted(_ seconds: Double) -> String {
        seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
    }
}
