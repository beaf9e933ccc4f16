import Foundation
import Glibc
import Petrel
import Testing
@testable import PetrelHealth

/// Probes against real sockets on loopback (no forwarder: the probe goes where
/// routing sends it), and the monitor's bounds under a storm of slow probes.
@Suite("HealthCheck probes on loopback", .serialized)
struct ProbeTests {
    static let loopback = IPAddress("127.0.0.1")!

    /// A listening socket on 127.0.0.1 and a free port; `serve` runs for the first accepted connection.
    final class Server: @unchecked Sendable {
        let fd: Int32
        let port: UInt16
        private var thread: Thread?

        init(udp: Bool = false, serve: (@Sendable (Int32) -> Void)? = nil) {
            let sock = socket(AF_INET, Int32(udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue), 0)
            var one: Int32 = 1
            setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            let bound = Probe.withSocketAddress(ProbeTests.loopback, port: 0) { bind(sock, $0, $1) }
            precondition(bound == 0)
            if !udp { listen(sock, 64) }
            var address = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(sock, $0, &length) } }
            fd = sock
            port = UInt16(bigEndian: address.sin_port)
            if let serve {
                let fd = self.fd
                // One connection (or datagram), then the thread ends: it must never
                // touch `fd` after close(), when the number may belong to another socket.
                let thread = Thread {
                    let client = udp ? fd : accept(fd, nil, nil)
                    if client < 0 { return }
                    serve(client)
                    if !udp { Glibc.close(client) }
                }
                thread.start()
                self.thread = thread
            }
        }

        func close() { shutdown(fd, Int32(SHUT_RDWR)); Glibc.close(fd) }
    }

    func probe(_ kind: HealthCheck.Kind, port: UInt16, proto: L4Protocol = .tcp, timeoutMs: Int = 500) -> ProbeResult {
        let check = HealthCheck(kind: kind, intervalMilliseconds: 1000, timeoutMilliseconds: timeoutMs)
        let target = HealthTarget(vip: VipKey(address: Self.loopback, port: port, proto: proto), real: IPAddress("127.0.0.2")!, check: check)
        let probe = Probe(target: target, now: HealthMonitor.now())
        if let result = probe.start(mark: nil) { return result }
        while true {
            var fds = [pollfd(fd: probe.fd, events: probe.events, revents: 0)]
            _ = poll(&fds, 1, 50)
            if fds[0].revents != 0, let result = probe.advance(revents: fds[0].revents) { return result }
            if HealthMonitor.now() >= probe.deadline { return .failed(.timeout) }
        }
    }

    static func answer(_ text: String) -> @Sendable (Int32) -> Void {
        { client in
            var buffer = [UInt8](repeating: 0, count: 1024)
            _ = recv(client, &buffer, buffer.count, 0)
            let bytes = Array(text.utf8)
            _ = send(client, bytes, bytes.count, 0)
        }
    }

    @Test("TCP: an accepting port passes, a closed port is refused")
    func tcp() {
        let server = Server()
        defer { server.close() }
        #expect(probe(.tcp, port: server.port) == .passed("connected"))
        let closed = Server()
        closed.close()
        #expect(probe(.tcp, port: closed.port) == .failed(.refused))
    }

    @Test("HTTP: the status code decides; garbage and silence fail with what happened")
    func http() {
        let http = HealthCheck.Kind.http(HealthCheck.HTTP(path: "/healthz", expectedStatus: [200, 204]))
        let cases: [(String, ProbeResult)] = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", .passed("HTTP 200")),
            ("HTTP/1.0 204 No Content\r\n\r\n", .passed("HTTP 204")),
            ("HTTP/1.1 500 Internal Server Error\r\n\r\n", .failed(.httpStatus(500))),
            ("HTTP/1.1 503 Service Unavailable\r\n\r\n", .failed(.httpStatus(503))),
            ("SSH-2.0-OpenSSH\r\n", .failed(.badResponse("not an HTTP status line: SSH-2.0-OpenSSH"))),
            ("", .failed(.badResponse("closed without an answer"))),
        ]
        for (answer, expected) in cases {
            let server = Server(serve: Self.answer(answer))
            #expect(probe(http, port: server.port) == expected, "answer \(answer.debugDescription)")
            server.close()
        }
        // Accepts but never answers: the timeout.
        let silent = Server()
        defer { silent.close() }
        #expect(probe(http, port: silent.port, timeoutMs: 200) == .failed(.timeout))
    }

    @Test("The HTTP request names the path and the Host")
    func httpRequest() {
        let target = HealthTarget(vip: VipKey(address: IPAddress("fd50:0:100::1")!, port: 8080, proto: .tcp), real: IPAddress("fd50::11")!,
                                  check: HealthCheck(kind: .tcp))
        let text = String(decoding: Probe.httpRequest(HealthCheck.HTTP(path: "/ready"), target: target), as: UTF8.self)
        #expect(text.hasPrefix("GET /ready HTTP/1.0\r\nHost: [fd50:0:100::1]:8080\r\n"))
        let named = String(decoding: Probe.httpRequest(HealthCheck.HTTP(host: "www.example"), target: target), as: UTF8.self)
        #expect(named.contains("Host: www.example\r\n"))
    }

    @Test("UDP: a reply passes, silence times out")
    func udp() {
        let echo = Server(udp: true) { fd in
            var buffer = [UInt8](repeating: 0, count: 512)
            var peer = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let n = withUnsafeMutablePointer(to: &peer) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, &buffer, buffer.count, 0, $0, &length) }
            }
            _ = withUnsafePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, buffer, n, 0, $0, length) } }
        }
        defer { echo.close() }
        let udp = HealthCheck.Kind.udp(HealthCheck.UDP(payload: Array("ping".utf8)))
        #expect(probe(udp, port: echo.port, proto: .udp) == .passed("reply of 4 bytes"))
        let silent = Server(udp: true)
        defer { silent.close() }
        #expect(probe(udp, port: silent.port, proto: .udp, timeoutMs: 200) == .failed(.timeout))
    }

    /// UDP sockets of this network namespace connected to 127.0.0.1:`port`, from the
    /// kernel's own table: exactly the probe sockets, whatever else the process has open.
    static func probeSockets(to port: UInt16) -> Int {
        // Read to the end: a proc file reports size 0 and comes a page at a time.
        guard let file = FileHandle(forReadingAtPath: "/proc/thread-self/net/udp") else { return -1 }
        defer { try? file.close() }
        let table = String(decoding: file.readDataToEndOfFile(), as: UTF8.self)
        let remote = "0100007F:" + String(format: "%04X", port)
        return table.split(separator: "\n").filter { $0.split(separator: " ").dropFirst(2).first == Substring(remote) }.count
    }

    @Test("A storm of 1,000 slow probes: at most max_in_flight at once, one socket each, update() never waits for a probe")
    func boundedStorm() throws {
        // A UDP socket that never answers: every probe runs to its timeout.
        let silent = Server(udp: true)
        defer { silent.close() }
        let check = HealthCheck(kind: .udp(HealthCheck.UDP()), intervalMilliseconds: 1000, timeoutMilliseconds: 400, rise: 1, fall: 1)
        let vip = VipKey(address: Self.loopback, port: silent.port, proto: .udp)
        let targets = (0..<1000).map { i in
            HealthTarget(vip: vip, real: .v4(127, 1, UInt8(i / 256), UInt8(i % 256)), check: check)
        }
        let transitions = Counter()
        let monitor = HealthMonitor(forwarder: nil, maxInFlight: 50) { _ in transitions.add() }
        defer { monitor.stop() }
        try monitor.update(targets: targets)

        var maxInFlight = 0, maxSockets = 0, slowestUpdate = 0.0
        let end = Date().addingTimeInterval(2.5)
        var round = 0
        while Date() < end {
            maxInFlight = max(maxInFlight, monitor.currentCounters.inFlight)
            maxSockets = max(maxSockets, Self.probeSockets(to: silent.port))
            round += 1
            if round % 10 == 0 {
                let start = Date()
                try monitor.update(targets: targets)
                _ = monitor.snapshot()
                slowestUpdate = max(slowestUpdate, Date().timeIntervalSince(start))
            }
            usleep(10_000)
        }
        let counters = monitor.currentCounters
        print("[health] storm: max in flight \(maxInFlight), probe sockets max \(maxSockets), slowest update \(String(format: "%.1f", slowestUpdate * 1000)) ms, "
            + "failed \(counters.failed), delayed \(counters.delayedByCap), went down \(transitions.value)")
        #expect(maxInFlight <= 50 && maxInFlight >= 40, "the cap is used and respected")
        #expect(maxSockets <= 50 && maxSockets >= 40, "one socket per probe in flight, as the kernel counts them")
        #expect(counters.delayedByCap > 0, "probes waited for the cap")
        #expect(counters.failed >= 200, "timeouts were reached: \(counters.failed)")
        #expect(slowestUpdate < 0.5, "update() and snapshot() never wait for probes")
        monitor.stop()
        #expect(Self.probeSockets(to: silent.port) == 0, "stop() closes every probe")
    }

    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var count = 0
        func add() { lock.lock(); count += 1; lock.unlock() }
        var value: Int { lock.lock(); defer { lock.unlock() }; return count }
    }
}
