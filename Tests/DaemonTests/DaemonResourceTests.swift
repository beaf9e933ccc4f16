import Foundation
import Glibc
import PetrelAdmin
import Testing

/// petreld must survive weeks: what one request costs it is given back.
/// Rounds default to 2,000; PETREL_LEAK_ROUNDS=10000 runs the full figure.
@Suite(.serialized)
struct DaemonResourceTests {
    static let rounds = Int(ProcessInfo.processInfo.environment["PETREL_LEAK_ROUNDS"] ?? "") ?? 2_000

    /// Each status call and each scrape used to leave one bpf program fd open.
    @Test func fileDescriptorsStayFlatOverStatusCallsAndScrapes() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start()
        let client = AdminClient(socketPath: harness.socketPath, timeoutSeconds: 10)
        for _ in 0..<10 { _ = try client.send(HTTPRequest(method: "GET", path: "/v1/status")) }
        let before = try harness.openFileDescriptors()
        let rssBefore = try harness.residentKilobytes()

        for _ in 0..<DaemonResourceTests.rounds {
            let status = try client.send(HTTPRequest(method: "GET", path: "/v1/status"))
            #expect(status.status == 200)
            let metrics = try client.send(HTTPRequest(method: "GET", path: "/metrics"))
            #expect(metrics.status == 200)
        }
        let scraped = try harness.scrapeMetrics(count: DaemonResourceTests.rounds)
        #expect(scraped == DaemonResourceTests.rounds, "every scrape of 127.0.0.1:9181/metrics answered 200")

        let after = try harness.openFileDescriptors()
        let rssAfter = try harness.residentKilobytes()
        print("petreld fds \(before) -> \(after), RSS \(rssBefore) -> \(rssAfter) kB over \(DaemonResourceTests.rounds) status calls, "
            + "\(DaemonResourceTests.rounds) admin-socket and \(scraped) TCP scrapes")
        #expect(after <= before, "petreld's open fds grew from \(before) to \(after)")
        #expect(try harness.petrel(["status"]).output.contains("attached:     yes"))
    }
}

extension DaemonHarness {
    var pid: Int32 {
        get throws {
            guard let daemon, daemon.isRunning else { throw Failure(description: "petreld is not running:\n\(daemonLog)") }
            return daemon.processIdentifier
        }
    }

    /// How many fds petreld has open now.
    func openFileDescriptors() throws -> Int {
        try FileManager.default.contentsOfDirectory(atPath: "/proc/\(try pid)/fd").count
    }

    /// A line of /proc/PID/status as a number, e.g. `Threads` or `VmRSS` (kB).
    func procStatus(_ field: String) throws -> Int {
        let text = try String(contentsOfFile: "/proc/\(try pid)/status", encoding: .utf8)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }),
              let value = Int(line.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") else {
            throw Failure(description: "no \(field) in /proc/PID/status")
        }
        return value
    }

    func residentKilobytes() throws -> Int { try procStatus("VmRSS") }

    /// Scrapes the metrics port (inside the namespace) `count` times, one connection each; returns how many answered 200.
    func scrapeMetrics(count: Int) throws -> Int {
        let script = """
        import http.client
        ok = 0
        for i in range(\(count)):
            c = http.client.HTTPConnection("127.0.0.1", 9181, timeout=10)
            c.request("GET", "/metrics")
            r = c.getresponse()
            r.read()
            ok += r.status == 200
            c.close()
        print(ok)
        """
        let result = try capture("/usr/sbin/ip", ["netns", "exec", namespace, "python3", "-c", script])
        guard result.status == 0, let ok = Int(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw Failure(description: "scraping failed: \(result.output)")
        }
        return ok
    }
}

/// A reload that takes long (here: its file keeps changing, so it waits for the
/// file to settle) must not hold up status calls or scrapes.
@Suite(.serialized)
struct ReloadConcurrencyTests {
    @Test func statusAndScrapesAnswerWhileAReloadWaits() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start()

        let touching = DispatchSemaphore(value: 0)
        let stop = StopFlag()
        let configPath = harness.configPath
        Thread.detachNewThread {
            // Touch the file every 100 ms: the reload keeps waiting for it to settle.
            while !stop.isSet {
                utimensat(AT_FDCWD, configPath, nil, 0)
                usleep(100_000)
            }
            touching.signal()
        }
        usleep(200_000)
        let reload = try harness.startPetrel(["reload"])
        usleep(300_000)
        let client = AdminClient(socketPath: harness.socketPath, timeoutSeconds: 5)
        var slowest = 0.0
        for _ in 0..<20 {
            let started = Date()
            #expect(try client.send(HTTPRequest(method: "GET", path: "/v1/status")).status == 200)
            #expect(try client.send(HTTPRequest(method: "GET", path: "/metrics")).status == 200)
            slowest = max(slowest, Date().timeIntervalSince(started))
        }
        #expect(reload.process.isRunning, "the reload was still waiting while 20 status calls and 20 scrapes were answered")
        #expect(slowest < 1.0, "slowest status + scrape: \(slowest) s")
        stop.set()
        touching.wait()
        let (status, output) = reload.finish()
        #expect(status == 0, "\(output)")
        #expect(output.contains("generation 2"), "\(output)")
    }
}

/// A flag set once, read from another thread.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
