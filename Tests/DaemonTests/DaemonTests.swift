import Foundation
import Glibc
import PetrelAdmin
import Testing

/// petreld and petrel as an operator uses them: a real daemon in a namespace of
/// its own, driven by the real CLI and by signals. Needs root.
@Suite(.serialized)
struct DaemonTests {
    @Test func cliCommandsAgainstARunningDaemon() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start()

        let status = harness.petrel(["status"])
        #expect(status.status == 0)
        #expect(status.output.contains("generation:   1"))
        #expect(status.output.contains("attached:     yes"))
        #expect(status.output.contains("adopted maps: no"))

        let list = harness.petrel(["vip", "list"])
        #expect(list.output.contains("udp/198.18.100.1:53"))
        #expect(list.output.contains("198.18.3.11  weight 1"))

        let weight = harness.petrel(["real", "weight", "udp/198.18.100.1:53", "198.18.3.12", "3"])
        #expect(weight.status == 0, "\(weight.output)")
        #expect(harness.petrel(["vip", "list"]).output.contains("198.18.3.12  weight 3"))
        let ring = harness.petrel(["ring", "udp/198.18.100.1:53"])
        #expect(ring.output.contains("1021 slots"))
        #expect(ring.output.contains("75.02%"), "weights 1:3 give the second real about 3/4 of the ring: \(ring.output)")

        let missing = harness.petrel(["real", "weight", "udp/198.18.100.1:53", "198.18.3.99", "3"])
        #expect(missing.status != 0)
        #expect(missing.output.contains("real 198.18.3.99 of VIP udp/198.18.100.1:53 not found"))
        let badWeight = harness.petrel(["real", "weight", "udp/198.18.100.1:53", "198.18.3.12", "2000000"])
        #expect(badWeight.status != 0)
        #expect(badWeight.output.contains("weight"))

        try harness.sendTraffic(count: 5)
        try harness.waitUntil("the VIP counts the datagrams", timeout: 10) {
            let stats = try AdminJSON.decode(StatsDocument.self, from: Data(harness.petrel(["stats", "--json"]).output.utf8))
            return (stats.global["rx"] ?? 0) >= 5 && (stats.vips.first?.packets ?? 0) >= 5
        }

        let explain = harness.petrel(["explain", "udp", "198.18.1.2:40000", "198.18.100.1:53"])
        #expect(explain.status == 0)
        #expect(explain.output.contains("VIP      udp/198.18.100.1:53"))
        #expect(explain.output.contains("=> forwarded to 198.18.3.1"))
        // veth0's MTU is 1500; the real is reached by IPv4 in IPv4 (20 bytes).
        #expect(explain.output.contains("packets up to 1480 bytes fit to this real"))
        let tooBig = harness.petrel(["explain", "udp", "198.18.1.2:40000", "198.18.100.1:53", "--length", "1481"])
        #expect(tooBig.output.contains("=> too big: answered with ICMP too big, MTU 1480"), "\(tooBig.output)")
        let badLength = harness.petrel(["explain", "udp", "198.18.1.2:40000", "198.18.100.1:53", "--length", "7"])
        #expect(badLength.status != 0 && badLength.output.contains("length"), "\(badLength.output)")
        let noVip = harness.petrel(["explain", "tcp", "198.18.1.2:40000", "198.18.100.7:80"])
        #expect(noVip.output.contains("no VIP matches"))

        let metrics = try harness.inNamespaceOutput(["curl", "-s", "http://127.0.0.1:9181/metrics"])
        #expect(metrics.contains("petrel_received_packets_total "))
        #expect(metrics.contains("petrel_vip_forwarded_packets_total{vip=\"udp/198.18.100.1:53\""))
        #expect(metrics.contains("petrel_config_generation 1"))

        // SIGTERM without --keep-forwarding-on-exit: detached, pins removed, socket removed.
        harness.signal(SIGTERM)
        #expect(try harness.waitForExit() == 0)
        #expect(!FileManager.default.fileExists(atPath: harness.pinPath + "/vips_v4"))
        #expect(!FileManager.default.fileExists(atPath: harness.socketPath))
        #expect(!(try harness.inNamespaceOutput(["ip", "link", "show", "veth0"])).contains("xdp"))
    }

    @Test func reloadRefusesABadFileAndAppliesAGoodOne() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start()

        try harness.writeConfig(broken: true)
        harness.signal(SIGHUP)
        try harness.waitUntil("the reload is refused", timeout: 10) {
            harness.petrel(["status"]).output.contains("0 succeeded, 1 failed")
        }
        #expect(harness.petrel(["status"]).output.contains("generation:   1"))
        #expect(harness.daemonLog.contains("vips[1].address"), "every issue is logged")
        let vips = try AdminJSON.decode([VipDocument].self, from: Data(harness.petrel(["vip", "list", "--json"]).output.utf8))
        #expect(vips.map(\.address) == ["198.18.100.1"], "the running VIPs stay")

        let viaCLI = harness.petrel(["reload"])
        #expect(viaCLI.status != 0)
        #expect(viaCLI.output.contains("vips[1].port"), "the CLI prints every issue: \(viaCLI.output)")

        try harness.writeConfig(weight: 0, extraVips: """
          - address: 198.18.100.2
            port: 80
            protocol: tcp
            reals:
              - address: 198.18.3.13

        """)
        harness.signal(SIGHUP)
        try harness.waitUntil("the good file is applied", timeout: 10) {
            harness.petrel(["status"]).output.contains("generation:   2")
        }
        let list = harness.petrel(["vip", "list"]).output
        #expect(list.contains("tcp/198.18.100.2:80"))
        #expect(list.contains("198.18.3.11  weight 0 (draining)"))
        #expect(harness.petrel(["status"]).output.contains("1 succeeded, 2 failed"))
    }

    @Test func restartAfterSIGKILLAdoptsThePinnedMaps() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start(keepForwarding: true)
        _ = harness.petrel(["real", "weight", "udp/198.18.100.1:53", "198.18.3.12", "5"])
        try harness.sendTraffic(count: 10)
        var before: UInt64 = 0
        try harness.waitUntil("the VIP counts the datagrams", timeout: 10) {
            let stats = try AdminJSON.decode(StatsDocument.self, from: Data(harness.petrel(["stats", "--json"]).output.utf8))
            before = stats.vips.first?.packets ?? 0
            return before >= 10
        }

        harness.signal(SIGKILL)
        try harness.waitForExit()
        #expect(FileManager.default.fileExists(atPath: harness.pinPath + "/vips_v4"))
        #expect(try harness.inNamespaceOutput(["ip", "link", "show", "veth0"]).contains("xdp"), "forwarding continues without petreld")

        try harness.start(keepForwarding: true)
        let status = harness.petrel(["status"]).output
        #expect(status.contains("adopted maps: yes"))
        #expect(status.contains("attached:     yes"))
        let adopted = try AdminJSON.decode(StatsDocument.self, from: Data(harness.petrel(["stats", "--json"]).output.utf8))
        #expect((adopted.vips.first?.packets ?? 0) >= before, "counters continue across the restart")
        try harness.sendTraffic(count: 3)
        try harness.waitUntil("counting goes on", timeout: 10) {
            let stats = try AdminJSON.decode(StatsDocument.self, from: Data(harness.petrel(["stats", "--json"]).output.utf8))
            return (stats.vips.first?.packets ?? 0) >= before + 3
        }

        // A clean stop with --keep-forwarding-on-exit leaves the program and the pins for the next petreld.
        harness.signal(SIGTERM)
        #expect(try harness.waitForExit() == 0)
        #expect(FileManager.default.fileExists(atPath: harness.pinPath + "/vips_v4"))
        #expect(try harness.inNamespaceOutput(["ip", "link", "show", "veth0"]).contains("xdp"))
    }

    @Test func invalidConfigExitsWithStatus2AndEveryIssue() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig(broken: true)
        let result = try harness.capture(DaemonHarness.binaries + "/petreld", ["--config", harness.configPath])
        #expect(result.status == 2)
        #expect(result.output.contains("vips[1].address"))
        #expect(result.output.contains("vips[1].port"))
        let check = try harness.capture(DaemonHarness.binaries + "/petrel", ["check", "--config", harness.configPath])
        #expect(check.status == 2, "petrel check and petreld agree: 2 is an invalid config")
        #expect(check.output.contains("vips[1].protocol"))
    }

    /// The admin socket is mode 0600, and even if someone loosens it, petreld
    /// answers only root and its own user (checked with SO_PEERCRED).
    @Test func adminSocketRefusesOtherUsers() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start()
        var info = stat()
        #expect(lstat(harness.socketPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)

        let asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups", DaemonHarness.binaries + "/petrel", "--socket", harness.socketPath, "status"]
        let denied = try harness.capture("/usr/bin/setpriv", asNobody)
        #expect(denied.status != 0)
        #expect(denied.output.contains("permission denied"), "\(denied.output)")

        chmod(harness.socketPath, 0o666)
        let refused = try harness.capture("/usr/bin/setpriv", asNobody)
        #expect(refused.status != 0)
        #expect(refused.output.contains("serves root and petreld's own user only"), "\(refused.output)")
        let raw = try harness.capture("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups",
                                                           "/usr/bin/curl", "-si", "--unix-socket", harness.socketPath, "http://petreld/v1/status"])
        #expect(raw.output.hasPrefix("HTTP/1.1 403 Forbidden\r\n"), "\(raw.output)")
        #expect(harness.petrel(["status"]).status == 0, "root is still served")
    }

    @Test func cliExplainsAMissingSocket() throws {
        let result = try DaemonHarness.captureStatic(DaemonHarness.binaries + "/petrel", ["--socket", "/tmp/no-such-petrel.sock", "status"])
        #expect(result.status != 0)
        #expect(result.output.contains("petreld is not running? no socket at /tmp/no-such-petrel.sock"))
    }
}

extension DaemonHarness {
    static func captureStatic(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
