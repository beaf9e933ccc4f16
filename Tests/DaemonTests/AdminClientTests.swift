import Foundation
import Glibc
import Testing

/// The CLI when petreld hangs, is swamped or dies mid-request: it gives up in
/// time and says what the operator should do.
@Suite(.serialized)
struct AdminClientTests {
    /// petreld killed while a `vip add` waits for its answer: the change may or may not have been made.
    @Test func aChangeCutOffByACrashSaysItsOutcomeIsUnknown() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start()
        harness.signal(SIGSTOP)  // the request is queued in the socket, never answered
        let add = try harness.startPetrel(["vip", "add", "tcp/198.18.100.2:80", "--real", "198.18.3.13"])
        try harness.waitUntil("the CLI's connection waits in petreld's accept queue", timeout: 20) {
            try harness.pendingConnections() >= 1
        }
        harness.signal(SIGKILL)
        let (status, output) = add.finish()
        #expect(status == 1)
        #expect(output.contains("the connection to petreld broke before it answered POST /v1/vips"), "\(output)")
        #expect(output.contains("the outcome is unknown"), "\(output)")
        #expect(output.contains("petrel vip list"), "\(output)")
    }

    /// A hung petreld (stopped) costs the CLI its --timeout, not forever.
    @Test func aHungDaemonTimesOut() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start()
        harness.signal(SIGSTOP)
        defer { harness.signal(SIGCONT) }
        let started = Date()
        let status = harness.petrel(["--timeout", "2", "status"])
        let elapsed = Date().timeIntervalSince(started)
        #expect(status.status == 1)
        #expect(status.output.contains("petreld did not answer GET /v1/status within 2 s"), "\(status.output)")
        #expect(elapsed < 4, "gave up after \(elapsed) s")
    }

    /// When not even the accept queue has room, connecting times out too.
    @Test func aFullAcceptQueueTimesOutTheConnect() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start()
        harness.signal(SIGSTOP)
        defer { harness.signal(SIGCONT) }
        var queued: [Int32] = []
        defer { for fd in queued { close(fd) } }
        // Fill the queue: non-blocking connects succeed until it is full, then say EAGAIN.
        while queued.count < 10_000 {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(harness.socketPath.utf8)) }
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            queued.append(fd)
            if result != 0 { break }
        }
        let started = Date()
        let status = harness.petrel(["--timeout", "2", "status"])
        let elapsed = Date().timeIntervalSince(started)
        #expect(status.status == 1)
        #expect(status.output.contains("petreld did not accept the connection within 2 s"), "\(status.output)")
        #expect(elapsed < 4, "gave up after \(elapsed) s (\(queued.count) connections queued)")
    }
}

/// A CLI run in the background.
struct RunningPetrel {
    let process: Process
    let pipe: Pipe

    func finish() -> (status: Int32, output: String) {
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

extension DaemonHarness {
    /// Connections waiting in the admin socket's accept queue (ss's Recv-Q of the listener).
    func pendingConnections() throws -> Int {
        let listing = try inNamespaceOutput(["ss", "-xlH"])
        guard let line = listing.split(separator: "\n").first(where: { $0.contains(socketPath) }) else { return 0 }
        let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        return fields.count > 2 ? Int(fields[2]) ?? 0 : 0
    }

    func startPetrel(_ arguments: [String]) throws -> RunningPetrel {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DaemonHarness.binaries + "/petrel")
        process.arguments = ["--socket", socketPath, "--timeout", "20"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        return RunningPetrel(process: process, pipe: pipe)
    }
}
