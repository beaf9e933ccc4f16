import Foundation
import Glibc
import PetrelAdmin
import Testing

/// `petrel flows --follow` against a running petreld with traffic in a network
/// namespace: the right lines, and a SYN burst with a slow follower that costs
/// bounded memory, keeps petreld answering and is counted. Needs root.
@Suite(.serialized)
struct FlowLogTests {
    static let tcpVip = "tcp/198.18.100.2:80"
    static let tcpReals: Set = ["198.18.3.13", "198.18.3.14"]
    static let extraVip = """
          - address: 198.18.100.2
            port: 80
            protocol: tcp
            reals:
              - address: 198.18.3.13
              - address: 198.18.3.14

        """

    /// Starts a python sender of `count` new flows (one frame each, source ports counting
    /// up from `firstPort`): TCP SYNs to 198.18.100.2:80 and UDP datagrams to 198.18.100.1:53.
    static func sendNewFlows(_ harness: DaemonHarness, count: Int, firstPort: Int = 1024, background: Bool = false) throws -> Process {
        let script = """
        import socket, struct
        def csum(b):
            b = b + b"\\0" * (len(b) % 2)
            s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
            s = (s >> 16) + (s & 0xffff); s += s >> 16
            return (~s) & 0xffff
        dst = bytes.fromhex(open("/sys/class/net/veth0/address").read().strip().replace(":", ""))
        src = bytes.fromhex(open("/sys/class/net/veth1/address").read().strip().replace(":", ""))
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind(("veth1", 0))
        def frame(proto, client, sport, vip, dport):
            l4 = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x02, 64240, 0, 0) if proto == 6 \\
                else struct.pack("!HHHH", sport, dport, 8 + 6, 0) + b"petrel"
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0,
                             socket.inet_aton(client), socket.inet_aton(vip))
            ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
            return dst + src + b"\\x08\\x00" + ip + l4
        for i in range(\(count)):
            port = \(firstPort) + i % 60000
            client = "198.18.%d.%d" % (1 + i // 60000 % 200, 2)
            s.send(frame(6, client, port, "198.18.100.2", 80))
            s.send(frame(17, client, port, "198.18.100.1", 53))
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", harness.namespace, "python3", "-c", script]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        if !background { process.waitUntilExit() }
        return process
    }

    /// `petrel flows ...` in the background, its output in files.
    static func startFlows(_ harness: DaemonHarness, _ arguments: [String], name: String) throws -> (Process, out: String, err: String) {
        let out = harness.directory + "/\(name).out", err = harness.directory + "/\(name).err"
        for path in [out, err] { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: DaemonHarness.binaries + "/petrel")
        process.arguments = ["--socket", harness.socketPath, "flows", "--follow"] + arguments
        process.standardOutput = FileHandle(forWritingAtPath: out)
        process.standardError = FileHandle(forWritingAtPath: err)
        try process.run()
        return (process, out, err)
    }

    static func metrics(_ harness: DaemonHarness) throws -> MetricSamples {
        MetricSamples(try harness.inNamespaceOutput(["curl", "-s", "http://127.0.0.1:9181/metrics"]))
    }

    static func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    @Test func followCountPrintsValidLinesNamingTheVipAndReal() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig(extraVips: FlowLogTests.extraVip)
        try harness.start()

        let (flows, out, err) = try FlowLogTests.startFlows(harness, ["--count", "20", "--vip", FlowLogTests.tcpVip], name: "follow")
        defer { if flows.isRunning { flows.terminate() } }
        // New flows to both VIPs until the follower has its 20 (it may start listening after the first ones).
        var port = 2000
        try harness.waitUntil("petrel flows prints 20 decisions and exits", timeout: 30) {
            if !flows.isRunning { return true }
            _ = try FlowLogTests.sendNewFlows(harness, count: 20, firstPort: port)
            port += 20
            usleep(200_000)
            return !flows.isRunning
        }
        #expect(flows.terminationStatus == 0, "stderr: \(FlowLogTests.read(err))")
        let lines = FlowLogTests.read(out).split(separator: "\n")
        #expect(lines.count == 20)
        let client = AdminClient(socketPath: harness.socketPath)
        for line in lines {
            let decoded = try AdminJSON.decode(FlowLogLine.self, from: Data(line.utf8))
            #expect(decoded.vip == FlowLogTests.tcpVip, "only the VIP asked for: \(line)")
            #expect(decoded.protocol == "tcp" && decoded.family == "ipv4" && decoded.reason == "ring" && decoded.remembered)
            #expect(decoded.destinationPort == 80)
            #expect(FlowLogTests.tcpReals.contains(decoded.real), "\(line)")
            #expect(abs(ISO8601DateFormatter.withFractions.date(from: decoded.time)?.timeIntervalSinceNow ?? 999) < 60, "\(decoded.time)")
            // The real is the one petreld's explain gives for the same 5-tuple.
            let answer = try client.send(HTTPRequest(method: "GET", path: "/v1/explain", query: [
                "proto": "tcp", "src": decoded.client, "sport": "\(decoded.clientPort)", "dst": "198.18.100.2", "dport": "80",
            ]))
            let explained = try AdminJSON.decode(ExplainDocument.self, from: answer.body)
            #expect(explained.real == decoded.real, "\(line) vs \(explained.text)")
        }
        #expect(FlowLogTests.read(err).contains("petrel flows: 20 decision(s) shown, 0 dropped"), "\(FlowLogTests.read(err))")

        // Nobody follows now: the data plane is told so and logs nothing more.
        try harness.waitUntil("no follower left", timeout: 5) { try FlowLogTests.metrics(harness)["petrel_flow_log_followers"] == 0 }
        let before = try FlowLogTests.metrics(harness)["petrel_events_total{event=\"flow_log_candidate\"}"]
        _ = try FlowLogTests.sendNewFlows(harness, count: 50, firstPort: 40000)
        #expect(try FlowLogTests.metrics(harness)["petrel_events_total{event=\"flow_log_candidate\"}"] == before)

        // Bad parameters: refused, naming the field.
        let bad = harness.petrel(["flows", "--follow", "--sample", "0"])
        #expect(bad.status != 0 && bad.output.contains("--sample"), "\(bad.output)")
        let badQuery = try client.send(HTTPRequest(method: "GET", path: "/v1/flows", query: ["count": "0"]))
        #expect(badQuery.status == 400 && String(decoding: badQuery.body, as: UTF8.self).contains("count"))
        let badVip = try client.send(HTTPRequest(method: "GET", path: "/v1/flows", query: ["vip": "tcp/198.18.100.2"]))
        #expect(badVip.status == 400 && String(decoding: badVip.body, as: UTF8.self).contains("vip"))
        #expect(harness.petrel(["flows"]).output.contains("--follow is required"))
    }

    @Test func followLongerThanOneRequestChainsRequests() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig(extraVips: FlowLogTests.extraVip)
        try harness.start()

        // 7 s is longer than one request (FlowLogQuery.secondsRule: at most 5): the CLI asks again.
        let started = Date()
        let (flows, out, err) = try FlowLogTests.startFlows(harness, ["--seconds", "7", "--vip", "udp/198.18.100.1:53"], name: "chained")
        defer { if flows.isRunning { flows.terminate() } }
        try harness.waitUntil("the first request follows", timeout: 5) { try FlowLogTests.metrics(harness)["petrel_flow_log_followers"] == 1 }
        _ = try FlowLogTests.sendNewFlows(harness, count: 10, firstPort: 5000)
        usleep(useconds_t(max(0, 5.6 - Date().timeIntervalSince(started)) * 1_000_000))
        try harness.waitUntil("the second request follows", timeout: 5) { try FlowLogTests.metrics(harness)["petrel_flow_log_follows_total"] == 2 }
        _ = try FlowLogTests.sendNewFlows(harness, count: 10, firstPort: 6000)
        try harness.waitUntil("petrel flows ends after 7 s", timeout: 15) { !flows.isRunning }
        #expect(Date().timeIntervalSince(started) >= 6.5)
        #expect(flows.terminationStatus == 0, "\(FlowLogTests.read(err))")

        let lines = try FlowLogTests.read(out).split(separator: "\n").map { try AdminJSON.decode(FlowLogLine.self, from: Data($0.utf8)) }
        #expect(lines.allSatisfy { $0.vip == "udp/198.18.100.1:53" && $0.protocol == "udp" })
        #expect(Set(lines.map(\.clientPort)) == Set(5000..<5010).union(6000..<6010), "both requests' decisions, each once")
        #expect(FlowLogTests.read(err).contains("petrel flows: 20 decision(s) shown, 0 dropped"), "\(FlowLogTests.read(err))")
    }

    @Test func synBurstWithASlowFollowerIsCountedAndBounded() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig(extraVips: FlowLogTests.extraVip)
        try harness.start()
        let rssBefore = try #require(try FlowLogTests.metrics(harness)["process_resident_memory_bytes"])

        // A follower that never reads: its lines pile up in petreld until the bounds drop them.
        let slow = try RawConnection(unixPath: harness.socketPath)
        slow.send("GET /v1/flows?seconds=5 HTTP/1.1\r\nHost: petreld\r\n\r\n")
        // And one that reads, sampling 1 in 10 in the data plane.
        let (reader, out, err) = try FlowLogTests.startFlows(harness, ["--sample", "10", "--seconds", "5"], name: "sampled")
        defer { if reader.isRunning { reader.terminate() } }
        try harness.waitUntil("both follow", timeout: 10) { try FlowLogTests.metrics(harness)["petrel_flow_log_followers"] == 2 }

        // The burst: 60,000 new flows (TCP SYNs and UDP first datagrams), as fast as python sends.
        let burst = try FlowLogTests.sendNewFlows(harness, count: 30_000, background: true)
        defer { if burst.isRunning { burst.terminate() } }
        var slowestStatus = 0.0
        while burst.isRunning {
            let started = Date()
            #expect(harness.petrel(["status"]).status == 0)
            slowestStatus = max(slowestStatus, Date().timeIntervalSince(started))
            usleep(100_000)
        }
        #expect(slowestStatus < 2, "petreld answers during the burst (slowest status: \(slowestStatus) s)")

        try harness.waitUntil("both follows end", timeout: 20) { try FlowLogTests.metrics(harness)["petrel_flow_log_followers"] == 0 }
        reader.waitUntilExit()
        let metrics = try FlowLogTests.metrics(harness)
        let dropped = try #require(metrics["petrel_flow_log_lines_total{result=\"dropped\"}"])
        let sent = try #require(metrics["petrel_flow_log_lines_total{result=\"sent\"}"])
        #expect(dropped > 0, "the slow follower's lines were dropped and counted")
        #expect(sent > 0)
        let emitted = try #require(metrics["petrel_events_total{event=\"flow_log_emitted\"}"])
        let lost = try #require(metrics["petrel_events_total{event=\"flow_log_lost\"}"])
        let candidates = try #require(metrics["petrel_events_total{event=\"flow_log_candidate\"}"])
        #expect(emitted > 0)
        // Sampled 1 in 10 per CPU (the gcd of 1 in 1 and 1 in 10 is 1: the slow follower takes everything).
        #expect(emitted + lost <= candidates)
        let rssAfter = try #require(metrics["process_resident_memory_bytes"])
        print("flow log under a burst: \(Int(candidates)) decisions while followed, \(Int(emitted)) logged, \(Int(lost)) lost in the kernel; "
            + "\(Int(sent)) lines sent, \(Int(dropped)) dropped for the slow follower; slowest status \(slowestStatus) s; "
            + "RSS \(Int(rssBefore) / 1_048_576) -> \(Int(rssAfter) / 1_048_576) MiB")
        #expect(rssAfter - rssBefore < 64 * 1_048_576, "petreld grew by \((rssAfter - rssBefore) / 1_048_576) MiB")

        // The reading follower printed valid lines and its summary.
        #expect(reader.terminationStatus == 0, "\(FlowLogTests.read(err))")
        let lines = FlowLogTests.read(out).split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines.prefix(200) { _ = try AdminJSON.decode(FlowLogLine.self, from: Data(line.utf8)) }
        #expect(FlowLogTests.read(err).contains("petrel flows: \(lines.count) decision(s) shown"), "\(FlowLogTests.read(err))")
        #expect(harness.petrel(["status"]).status == 0)
    }
}

extension ISO8601DateFormatter {
    static var withFractions: ISO8601DateFormatter {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }
}
