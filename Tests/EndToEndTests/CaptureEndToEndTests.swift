import Foundation
import Glibc
import Petrel
import Testing

/// `petrel capture` against petreld in the demo network: a VIP's traffic read
/// back by Debian's tcpdump and tshark with the expected packets, outcomes and
/// reals; filters and limits; four captures at once and a fifth refused; a
/// client that goes mid-capture leaves no fd, thread or slot behind.
extension EndToEnd {
    @Suite("End to end: petrel capture", .serialized)
    struct CaptureEndToEndTests {
        typealias Daemon = DaemonTrafficTests.Daemon

        static func petrel(_ daemon: Daemon) -> String { Daemon.binaries + "/petrel" }

        /// Starts `petrel capture` with `arguments` and waits until petreld runs it (its file has a header).
        static func startCapture(_ daemon: Daemon, _ arguments: [String], file: String) throws -> Command.Running {
            let running = try Command.Running([petrel(daemon), "--socket", daemon.socket, "capture"] + arguments + ["-w", file])
            let deadline = Date().addingTimeInterval(10)
            while ((try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0) == 0, Date() < deadline { usleep(20_000) }
            return running
        }

        static func metric(_ daemon: Daemon, _ name: String) throws -> Double? {
            let page = String(decoding: try AdminSocket.get("/metrics", socket: daemon.socket), as: UTF8.self)
            return page.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }

        @Test("A VIP's traffic, received and sent, read back by tcpdump and tshark with its outcome and real")
        func vipTrafficReadByTcpdumpAndTshark() throws {
            try withTestNetwork(vips: nil) { network in
                let daemon = try Daemon(network: network)
                defer { daemon.destroy() }
                try daemon.write(step: 0)
                try daemon.start()
                let file = daemon.directory + "/web.pcapng"
                let capture = try Self.startCapture(daemon, ["--vip", "tcp/198.18.100.1:80", "--direction", "both", "--count", "20", "--seconds", "30"],
                                                    file: file)
                let report = try network.exchange(vip: Plan.vip4, port: 80, proto: .tcp, count: 10)
                #expect(report.answered == report.sent)
                let result = try capture.wait(timeout: 30)
                #expect(result.status == 0, "\(result.error)")
                #expect(result.error.contains("packets=20 "), "the summary: \(result.error)")
                #expect(result.error.contains("lost_ring_full=0 lost_slow_client=0"), "\(result.error)")
                #expect(result.error.contains("count reached"), "\(result.error)")

                // Debian's tcpdump reads the file: the client's packets to the VIP, and the same packets encapsulated to a real.
                let lines = try Command.run(["tcpdump", "-nr", file]).split(separator: "\n").map(String.init)
                #expect(lines.count == 20, "\(lines)")
                let received = lines.filter { $0.contains("IP 198.18.1.2.") && $0.contains("> 198.18.100.1.80: Flags") && !$0.contains("198.19.") }
                let sent = lines.filter { $0.contains("> 198.18.3.1") && $0.contains(": IP 198.18.1.2.") && $0.contains("> 198.18.100.1.80: Flags") }
                #expect(received.count == 10 && sent.count == 10, "\(lines.joined(separator: "\n"))")

                // tshark reads each packet's interface and comment: outcome, VIP and the real it went to.
                let fields = try Command.run(["tshark", "-r", file, "-T", "fields", "-E", "separator=|",
                                              "-e", "frame.interface_name", "-e", "frame.comment", "-e", "ip.dst"])
                let rows = fields.split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
                #expect(rows.count == 20)
                for row in rows where row.count == 3 {
                    let real = row[1].split(separator: " ").first { $0.hasPrefix("real=") }.map { String($0.dropFirst(5)) } ?? ""
                    #expect(row[1].hasPrefix("outcome=forward vip=tcp/198.18.100.1:80 real=198.18.3.1"), "\(row)")
                    #expect(row[1].hasSuffix("direction=\(row[0])"), "\(row)")
                    // A sent copy's outer destination (the first ip.dst) is the real its comment names.
                    if row[0] == "sent" { #expect(row[2].hasPrefix(real + ","), "\(row)") } else { #expect(row[2] == "198.18.100.1", "\(row)") }
                }
                #expect(rows.filter { $0.first == "received" }.count == 10)
            }
        }

        @Test("petrel capture -w - | tcpdump -r -, filters by outcome, the time limit, and bad filters named")
        func pipeFiltersAndLimits() throws {
            try withTestNetwork(vips: nil) { network in
                let daemon = try Daemon(network: network)
                defer { daemon.destroy() }
                try daemon.write(step: 0)
                try daemon.start()
                let script = "\(Self.petrel(daemon)) --socket \(daemon.socket) capture --vip tcp/198.18.100.1:80 --count 6 --seconds 30 -w - "
                    + "| tcpdump -nr - > \(daemon.directory)/piped.txt 2>&1"
                let piped = try Command.Running(["sh", "-c", script])
                usleep(800_000)
                _ = try network.exchange(vip: Plan.vip4, port: 80, proto: .tcp, count: 3)
                let pipedResult = try piped.wait(timeout: 30)
                #expect(pipedResult.status == 0, "\(pipedResult.error)")
                let text = try String(contentsOfFile: "\(daemon.directory)/piped.txt", encoding: .utf8)
                #expect(text.split(separator: "\n").filter { $0.contains("> 198.18.100.1.80: Flags") }.count == 6, "\(text)")

                // Only packets that are passed as no VIP's: traffic to VIP port 80 is not among them.
                let file = daemon.directory + "/pass.pcap"
                let passes = try Self.startCapture(daemon, ["--outcome", "pass_not_vip", "--protocol", "tcp", "--format", "pcap", "--seconds", "2"],
                                                   file: file)
                _ = try network.exchange(vip: Plan.vip4, port: 80, proto: .tcp, count: 2)
                let passResult = try passes.wait(timeout: 20)
                #expect(passResult.status == 0)
                #expect(passResult.error.contains("packets=0 ") && passResult.error.contains("time limit (2 s)"), "\(passResult.error)")
                #expect(try Command.run(["tcpdump", "-nr", file]).isEmpty)

                // Bad filters: the field named, by petrel before sending and by petreld for a VIP it does not have.
                for (arguments, field) in [(["--outcome", "forwarded"], "outcome"), (["--count", "0"], "count"), (["--sample", "0"], "sample"),
                                           (["--vip", "tcp/198.18.100.9:80"], "vip"), (["--snaplen", "20"], "snaplen")] {
                    let bad = try Command.Running([Self.petrel(daemon), "--socket", daemon.socket, "capture"] + arguments + ["-w", "/dev/null"])
                        .wait(timeout: 20)
                    #expect(bad.status != 0)
                    #expect(bad.error.contains("\(field):") || bad.output.contains("\(field):"), "\(arguments): \(bad.error)")
                }
            }
        }

        @Test("Four captures at once, a fifth refused with 409; a client that goes frees its slot and leaks nothing")
        func slotsRefusalAndDisconnect() throws {
            try withTestNetwork(vips: nil) { network in
                let daemon = try Daemon(network: network)
                defer { daemon.destroy() }
                try daemon.write(step: 0)
                try daemon.start()
                let pid = try #require(daemon.processID)
                // A first capture warms up what stays (the dispatch pool's threads); the baseline is taken after it.
                let warmUp = try Self.startCapture(daemon, ["--vip", "tcp/198.18.100.1:80", "--count", "2", "--seconds", "20"],
                                                   file: "\(daemon.directory)/warmup.pcapng")
                _ = try network.exchange(vip: Plan.vip4, port: 80, proto: .tcp, count: 2)
                #expect(try warmUp.wait(timeout: 20).status == 0)
                usleep(300_000)
                let fdsBefore = Self.count("/proc/\(pid)/fd")
                let threadsBefore = Self.count("/proc/\(pid)/task")

                var running: [Command.Running] = []
                for n in 0..<4 {
                    running.append(try Self.startCapture(daemon, ["--vip", "tcp/198.18.100.1:80", "--count", "1000", "--seconds", "60"],
                                                         file: "\(daemon.directory)/slot\(n).pcapng"))
                }
                #expect(try Self.metric(daemon, "petrel_captures_running") == 4)
                let fifth = try Command.Running([Self.petrel(daemon), "--socket", daemon.socket, "capture", "--count", "1", "-w", "/dev/null"])
                    .wait(timeout: 20)
                #expect(fifth.status != 0)
                #expect(fifth.error.contains("(409)") && fifth.error.contains("all 4 capture slots are in use"), "\(fifth.error)")
                var nullDevice = stat()
                #expect(stat("/dev/null", &nullDevice) == 0 && (nullDevice.st_mode & S_IFMT) == S_IFCHR,
                        "-w /dev/null writes into the device, never replaces it")

                // Traffic reaches all four; then their clients are killed mid-capture.
                _ = try network.exchange(vip: Plan.vip4, port: 80, proto: .tcp, count: 3)
                usleep(300_000)
                for capture in running { kill(capture.process.processIdentifier, SIGKILL) }
                for capture in running { capture.process.waitUntilExit() }
                let deadline = Date().addingTimeInterval(10)
                while (try? Self.metric(daemon, "petrel_captures_running")) != 0, Date() < deadline { usleep(50_000) }
                #expect(try Self.metric(daemon, "petrel_captures_running") == 0, "every slot freed when its client went")
                let again = try Self.startCapture(daemon, ["--vip", "tcp/198.18.100.1:80", "--count", "2", "--seconds", "20"],
                                                  file: "\(daemon.directory)/again.pcapng")
                _ = try network.exchange(vip: Plan.vip4, port: 80, proto: .tcp, count: 2)
                #expect(try again.wait(timeout: 20).status == 0, "a freed slot serves a new capture")

                usleep(300_000)
                #expect(Self.count("/proc/\(pid)/fd") <= fdsBefore, "no fd left behind (\(fdsBefore) before)")
                #expect(Self.count("/proc/\(pid)/task") <= threadsBefore + 2, "no thread left behind (\(threadsBefore) before)")
                let written = try Self.metric(daemon, "petrel_capture_packets_total")
                #expect((written ?? 0) >= 4, "ended captures' packets are counted in the metrics")
            }
        }

        static func count(_ directory: String) -> Int {
            (try? FileManager.default.contentsOfDirectory(atPath: directory).count) ?? -1
        }
    }
}
