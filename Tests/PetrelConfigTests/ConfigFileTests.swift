import Foundation
import Glibc
import PetrelConfig
import Testing

/// Reading the config file: once, whole, never mid-write, never too large.
@Suite("Reading a config file safely")
struct ConfigFileTests {
    private func temporaryPath(_ name: String) -> String {
        NSTemporaryDirectory() + "petrel-\(name)-\(getpid()).yaml"
    }

    @Test("A file over the size limit is refused at once, before it is read")
    func sizeLimit() throws {
        let path = temporaryPath("huge")
        defer { unlink(path) }
        // 50 MB of holes: refused from its size alone, so this is quick and takes no disk.
        let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        try #require(fd >= 0)
        #expect(ftruncate(fd, 50_000_000) == 0)
        close(fd)
        let oneDayAgo = timespec(tv_sec: time(nil) - 86_400, tv_nsec: 0)
        _ = [oneDayAgo, oneDayAgo].withUnsafeBufferPointer { utimensat(AT_FDCWD, path, $0.baseAddress, 0) }

        let started = Date()
        do {
            _ = try ConfigLoader.load(path: path)
            Issue.record("a 50 MB file was accepted")
        } catch {
            #expect(error.issues.map(\.message) == [
                "cannot read the config file: it is 50000000 bytes, more than the limit of \(ConfigFile.maxBytes) bytes (8 MiB)",
            ])
        }
        #expect(Date().timeIntervalSince(started) < 1, "refusing took \(Date().timeIntervalSince(started)) s")
    }

    @Test("A file at the limit is read")
    func atTheLimit() throws {
        let path = temporaryPath("limit")
        defer { unlink(path) }
        let comment = "# " + String(repeating: "x", count: 98) + "\n"
        var text = minimalYAML
        text += String(repeating: comment, count: (ConfigFile.maxBytes - text.utf8.count) / comment.utf8.count)
        text += String(repeating: "\n", count: ConfigFile.maxBytes - text.utf8.count)
        #expect(text.utf8.count == ConfigFile.maxBytes)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        #expect(try ConfigFile.read(path: path, settleInterval: 0).utf8.count == ConfigFile.maxBytes)
    }

    @Test("A FIFO is refused instead of blocking")
    func fifo() throws {
        let path = temporaryPath("fifo")
        defer { unlink(path) }
        try #require(mkfifo(path, 0o600) == 0)
        do {
            _ = try ConfigLoader.load(path: path)
            Issue.record("a FIFO was accepted")
        } catch {
            #expect(error.issues.map(\.message) == ["cannot read the config file: it is not a regular file"])
        }
    }

    @Test("A file being written in place is read only once the writer has stopped")
    func waitsForTheWriter() throws {
        let path = temporaryPath("inplace")
        defer { unlink(path) }
        let full = minimalYAML + String(repeating: "# padding line\n", count: 40)
        let writer = Thread {
            let fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
            defer { close(fd) }
            for chunk in Array(full.utf8).chunked(16) {
                _ = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                usleep(5_000)
            }
        }
        // The file exists, partly written, when the reader starts.
        try "interface: eth0\n".write(toFile: path, atomically: false, encoding: .utf8)
        writer.start()
        usleep(20_000)
        #expect(try ConfigFile.read(path: path, settleInterval: 0.2) == full)
    }

    @Test("A file that never stops changing is refused, saying to write and rename")
    func neverSettles() throws {
        let path = temporaryPath("busy")
        defer { unlink(path) }
        try minimalYAML.write(toFile: path, atomically: false, encoding: .utf8)
        let stop = ManagedAtomicFlag()
        let writer = Thread {
            let fd = open(path, O_WRONLY | O_APPEND)
            defer { close(fd) }
            while !stop.isSet {
                _ = write(fd, "#\n", 2)
                usleep(10_000)
            }
        }
        writer.start()
        defer { stop.set() }
        do {
            _ = try ConfigFile.read(path: path, settleInterval: 0.1, settleTimeout: 0.5)
            Issue.record("a file that kept changing was read")
        } catch {
            #expect(error.issues.first?.message.contains("rename it over the old one") == true)
        }
    }
}

/// A flag set by one thread and read by another.
private final class ManagedAtomicFlag: @unchecked Sendable {
    // Safe: every access holds the lock.
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

extension Array {
    fileprivate func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
