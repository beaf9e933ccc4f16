import Foundation
import Glibc
import PetrelAdmin
import Testing

/// A running petreld offered bad config files, one after another: each is
/// refused with its field named, and all the while the daemon keeps its config
/// and keeps forwarding.
@Suite struct BadReloadTests {
    /// A broken variant of the harness's config: (what is wrong, the edit, the text the refusal
    /// must contain: the field, or for a syntax error "invalid YAML").
    static let cases: [(String, @Sendable (String) -> String, String)] = [
        ("unknown top-level key", { $0 + "colour: blue\n" }, "colour"),
        ("misspelt key", { $0.replacingOccurrences(of: "ring_size:", with: "ringsize:") }, "ringsize"),
        ("interface missing", { $0.replacingOccurrences(of: "interface: veth0\n", with: "") }, "interface"),
        ("interface name too long", { $0.replacingOccurrences(of: "interface: veth0", with: "interface: averyveryverylongname0") }, "interface"),
        ("attach mode unknown", { $0.replacingOccurrences(of: "attach_mode: generic", with: "attach_mode: turbo") }, "attach_mode"),
        ("next hop MAC malformed", { $0.replacingOccurrences(of: "02:00:00:00:02:01", with: "02:00:00:00:02") }, "next_hop.mac"),
        ("next hop with mac and gateway", { $0.replacingOccurrences(of: "  mac: \"02:00:00:00:02:01\"", with: "  mac: \"02:00:00:00:02:01\"\n  gateway: 10.9.0.2") }, "next_hop"),
        ("ring size not prime", { $0.replacingOccurrences(of: "ring_size: 1021", with: "ring_size: 1000") }, "ring_size"),
        ("ring size a string", { $0.replacingOccurrences(of: "ring_size: 1021", with: "ring_size: big") }, "ring_size"),
        ("VIP address malformed", { $0.replacingOccurrences(of: "- address: 198.18.100.1", with: "- address: 198.18.100.300") }, "vips[0].address"),
        ("VIP port out of range", { $0.replacingOccurrences(of: "port: 53", with: "port: 70000") }, "vips[0].port"),
        ("VIP protocol unknown", { $0.replacingOccurrences(of: "protocol: udp", with: "protocol: sctp") }, "vips[0].protocol"),
        ("VIP flag unknown", { $0.replacingOccurrences(of: "protocol: udp", with: "protocol: udp\n    flags: [fast]") }, "vips[0].flags"),
        ("real address malformed", { $0.replacingOccurrences(of: "- address: 198.18.3.12", with: "- address: 198.18.3") }, "vips[0].reals[1].address"),
        ("real weight negative", { $0.replacingOccurrences(of: "weight: 1", with: "weight: -1") }, "vips[0].reals[0].weight"),
        ("real weight too large", { $0.replacingOccurrences(of: "weight: 1", with: "weight: 2000000") }, "vips[0].reals[0].weight"),
        ("real twice in a VIP", { $0.replacingOccurrences(of: "- address: 198.18.3.12", with: "- address: 198.18.3.11") }, "vips[0].reals[1].address"),
        ("IPv4 real behind an IPv6 VIP", { $0.replacingOccurrences(of: "- address: 198.18.100.1", with: "- address: \"fd50:0:100::1\"") }, "vips[0].reals[0].address"),
        ("VIP twice", { $0 + "  - address: 198.18.100.1\n    port: 53\n    protocol: udp\n" }, "vips[1]"),
        ("VIP without port", { $0.replacingOccurrences(of: "    port: 53\n", with: "") }, "vips[0].port"),
        ("reals not a list", { $0 + "  - address: 198.18.100.2\n    port: 80\n    protocol: tcp\n    reals: 198.18.3.11\n" }, "vips[1].reals"),
        ("more VIPs than max_vips", { $0.replacingOccurrences(of: "ring_size: 1021", with: "ring_size: 1021\nmax_vips: 1")
            + "  - address: 198.18.100.2\n    port: 80\n    protocol: tcp\n" }, "max_vips"),
        ("more reals than max_reals", { $0.replacingOccurrences(of: "ring_size: 1021", with: "ring_size: 1021\nmax_reals: 2") }, "max_reals"),
        ("metrics not on loopback", { $0.replacingOccurrences(of: "listen: 127.0.0.1:9181", with: "listen: 10.9.0.1:9181") }, "metrics.listen"),
        ("encapsulation prefix of the wrong family", { $0 + "encapsulation:\n  source_v4: \"fd50::\"\n" }, "encapsulation.source_v4"),
        ("MTU out of range", { $0 + "mtu: 100\n" }, "mtu"),
        // Syntax errors have no field: the line and "invalid YAML" must be there.
        ("YAML syntax error", { $0 + "vips: [\n" }, "invalid YAML"),
        ("tab indentation", { $0.replacingOccurrences(of: "    port: 53", with: "\tport: 53") }, "invalid YAML"),
    ]

    @Test("28 bad files in a row: each refused naming its field; the daemon keeps its config and keeps forwarding")
    func everyBadFileIsRefused() throws {
        #expect(Self.cases.count >= 25)
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start()
        let good = try String(contentsOfFile: harness.configPath, encoding: .utf8)
        let vipsBefore = harness.petrel(["vip", "list", "--json"]).output
        var forwarded = try forwardCount(harness)

        for (what, edit, field) in Self.cases {
            try harness.installConfig(edit(good))
            let reload = harness.petrel(["reload"])
            #expect(reload.status != 0, "\(what): the reload was accepted")
            #expect(reload.output.contains(field), "\(what): the refusal does not name \(field): \(reload.output)")
            #expect(harness.petrel(["vip", "list", "--json"]).output == vipsBefore, "\(what): the running VIPs changed")
            try harness.sendTraffic(count: 5)
            let now = try forwardCount(harness)
            #expect(now == forwarded + 5, "\(what): forwarding stopped (\(forwarded) -> \(now))")
            forwarded = now
        }
        #expect(harness.petrel(["status"]).output.contains("generation:   1"))
        #expect(harness.petrel(["status"]).output.contains("0 succeeded, \(Self.cases.count) failed"))
    }

    @Test("Going past a capacity through the CLI is refused, naming the limit")
    func capacityThroughTheCLI() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        var text = try String(contentsOfFile: harness.configPath, encoding: .utf8)
        text = text.replacingOccurrences(of: "ring_size: 1021", with: "ring_size: 1021\nmax_vips: 2")
        try text.write(toFile: harness.configPath, atomically: true, encoding: .utf8)
        try harness.start()

        #expect(harness.petrel(["vip", "add", "tcp/198.18.100.2:80", "--real", "198.18.3.11"]).status == 0)
        let refused = harness.petrel(["vip", "add", "tcp/198.18.100.3:80", "--real", "198.18.3.11"])
        #expect(refused.status != 0)
        #expect(refused.output.contains("max_vips"), "\(refused.output)")
        #expect(!harness.petrel(["vip", "list"]).output.contains("198.18.100.3"))
    }

    private func forwardCount(_ harness: DaemonHarness) throws -> UInt64 {
        let stats = try AdminJSON.decode(StatsDocument.self, from: Data(harness.petrel(["stats", "--json"]).output.utf8))
        return stats.global["forward"] ?? 0
    }
}

/// The parts of petreld that the other tests leave alone: a next hop given as a
/// gateway, the loopback TCP admin listener, and `petrel stats --watch`.
@Suite struct DaemonOptionTests {
    @Test("A gateway next hop is resolved to its MAC; the TCP admin listener answers; --watch redraws")
    func gatewayTCPAndWatch() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        // The gateway must be a neighbour, not a local address: move veth1 (10.9.0.2)
        // into a namespace of its own.
        let peer = harness.namespace + "p"
        _ = try harness.capture("/usr/sbin/ip", ["netns", "add", peer])
        defer { _ = try? harness.capture("/usr/sbin/ip", ["netns", "del", peer]) }
        for command in [["ip", "link", "set", "veth1", "netns", peer]] {
            #expect(try harness.capture("/usr/sbin/ip", ["netns", "exec", harness.namespace] + command).status == 0)
        }
        for command in [["ip", "addr", "add", "10.9.0.2/24", "dev", "veth1"], ["ip", "link", "set", "veth1", "up"]] {
            #expect(try harness.capture("/usr/sbin/ip", ["netns", "exec", peer] + command).status == 0)
        }
        try harness.writeConfig()
        var text = try String(contentsOfFile: harness.configPath, encoding: .utf8)
        text = text.replacingOccurrences(of: "  mac: \"02:00:00:00:02:01\"", with: "  gateway: 10.9.0.2")
        text = text.replacingOccurrences(of: "  socket: \(harness.socketPath)", with: "  socket: \(harness.socketPath)\n  tcp: 127.0.0.1:9180")
        try text.write(toFile: harness.configPath, atomically: true, encoding: .utf8)
        try harness.start()

        // veth1 holds 10.9.0.2: its MAC must be what petreld forwards to.
        let peerMAC = try harness.capture("/usr/sbin/ip", ["netns", "exec", peer, "cat", "/sys/class/net/veth1/address"]).output
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(harness.petrel(["status"]).output.contains("next hop:     \(peerMAC)"), "\(harness.petrel(["status"]).output)")

        let viaTCP = try harness.inNamespaceOutput(["python3", "-c", """
            import socket
            s = socket.create_connection(("127.0.0.1", 9180), timeout=5)
            s.sendall(b"GET /v1/status HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk: break
                data += chunk
            print(data.decode())
            """])
        #expect(viaTCP.contains("200"), "\(viaTCP)")
        #expect(viaTCP.contains("\"generation\""), "\(viaTCP)")

        // SIGKILL: children of Foundation's Process start with SIGTERM blocked.
        let watch = try harness.capture("/usr/bin/timeout", ["-s", "KILL", "2.5", DaemonHarness.binaries + "/petrel", "--socket", harness.socketPath, "stats", "--watch", "0.5"])
        #expect(watch.status != 0, "--watch runs until stopped")
        #expect(watch.output.components(separatedBy: "COUNTER").count - 1 >= 3, "redrawn at least three times: \(watch.output.prefix(400))")
    }
}
