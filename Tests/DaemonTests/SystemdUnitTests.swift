import Foundation
import Glibc
import Testing

/// config/petreld.service: its sandbox scores well, and petreld works inside it.
/// systemd is not running here, so the unit's capability set is applied with
/// setpriv and its system-call filter is checked against every call petreld makes.
@Suite(.serialized)
struct SystemdUnitTests {
    static let unitPath = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("config/petreld.service").path

    /// The values of every `name=` line of the unit, in order.
    static func directive(_ name: String) throws -> [String] {
        try String(contentsOfFile: unitPath, encoding: .utf8).split(separator: "\n")
            .filter { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
    }

    @Test("systemd-analyze security rates the unit's exposure 4.0 or less")
    func exposure() throws {
        let result = try DaemonHarness.captureStatic("/usr/bin/systemd-analyze", ["security", "--offline=true", Self.unitPath])
        let line = try #require(result.output.split(separator: "\n").first { $0.contains("Overall exposure level") })
        let score = try #require(line.split(separator: " ").compactMap { Double($0) }.last)
        #expect(score <= 4.0, "\(line)")
    }

    @Test("petreld starts, reloads, serves and detaches with only the unit's capabilities, making only system calls its filter allows")
    func capabilitiesAndSystemCalls() throws {
        let harness = try DaemonHarness()
        var petreld: pid_t = 0
        defer {
            if petreld > 0 { kill(petreld, SIGKILL) }
            harness.stop()
        }
        let capabilities = try #require(Self.directive("CapabilityBoundingSet").first).split(separator: " ")
            .map { "+" + $0.dropFirst("CAP_".count).lowercased() }
        #expect(!capabilities.contains("+net_raw") && !capabilities.isEmpty)
        let trace = harness.directory + "/syscalls.trace"
        try harness.writeConfig()
        try harness.start(wrapper: ["setpriv", "--bounding-set", (["-all"] + capabilities).joined(separator: ","), "--inh-caps", "-all",
                                    "--", "strace", "-f", "-qq", "-o", trace])
        petreld = try #require(Self.pid(of: harness.configPath))

        let status = harness.petrel(["status"])
        #expect(status.output.contains("attached:     yes"), "\(status.output)")
        #expect(harness.petrel(["vip", "add", "tcp/198.18.100.2:80", "--real", "198.18.3.13"]).status == 0)
        try harness.installConfig(try String(contentsOfFile: harness.configPath, encoding: .utf8))
        #expect(harness.petrel(["reload"]).status == 0)
        #expect(try harness.inNamespaceOutput(["curl", "-s", "http://127.0.0.1:9181/metrics"]).contains("petrel_vips"))
        try harness.sendTraffic(count: 3)
        kill(petreld, SIGTERM)
        #expect(try harness.waitForExit() == 0)
        petreld = 0
        #expect(!(try harness.inNamespaceOutput(["ip", "link", "show", "veth0"])).contains("xdp"), "detached")
        #expect(!FileManager.default.fileExists(atPath: harness.pinPath + "/vips"), "pins removed")

        // Every system call petreld made (from its exec on) must pass SystemCallFilter=.
        let lines = try String(contentsOfFile: trace, encoding: .utf8).split(separator: "\n")
        let start = try #require(lines.firstIndex { $0.contains("execve(\"\(DaemonHarness.binaries)/petreld\"") })
        // "1234 name(args) = result", the pid only while strace follows more than one process.
        let used = Set(lines[start...].compactMap { line -> String? in
            let call = line.drop { $0.isNumber }.drop { $0 == " " }
            guard let name = call.split(separator: "(", maxSplits: 1).first, call.contains("("),
                  name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { return nil }
            return String(name)
        })
        #expect(used.count > 20, "\(lines[start...].prefix(5))")
        var allowed = Set<String>()
        var denied = Set<String>()
        for value in try Self.directive("SystemCallFilter") {
            let deny = value.hasPrefix("~")
            for item in value.dropFirst(deny ? 1 : 0).split(separator: " ") {
                let calls = try Self.expand(String(item))
                if deny { denied.formUnion(calls) } else { allowed.formUnion(calls) }
            }
        }
        #expect(allowed.contains("bpf") && allowed.contains("read"))
        let refused = used.filter { !allowed.contains($0) || denied.contains($0) }
        #expect(refused.isEmpty, "system calls the unit would refuse: \(refused.sorted())")
    }

    /// A system-call group of systemd's (`@system-service`) as call names, nested groups included.
    static func expand(_ item: String) throws -> Set<String> {
        guard item.hasPrefix("@") else { return [item] }
        let listing = try DaemonHarness.captureStatic("/usr/bin/systemd-analyze", ["syscall-filter", item]).output
        var calls = Set<String>()
        for line in listing.split(separator: "\n").dropFirst() {
            let name = line.trimmingCharacters(in: .whitespaces)
            if name.isEmpty || name.hasPrefix("#") { continue }
            calls.formUnion(name.hasPrefix("@") ? try expand(name) : [name])
        }
        return calls
    }

    /// The pid of the petreld started with this config file.
    static func pid(of configPath: String) -> pid_t? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = pid_t(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if arguments.first?.hasSuffix("/petreld") == true && arguments.contains(configPath) { return pid }
        }
        return nil
    }
}
