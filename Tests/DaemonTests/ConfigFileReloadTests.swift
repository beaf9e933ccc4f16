import Foundation
import Glibc
import PetrelAdmin
import PetrelConfig
import Testing

/// Reloads of files an operator might produce by accident: written in place while
/// SIGHUPs arrive, or far too large. Neither may change the running VIPs.
@Suite(.serialized)
struct ConfigFileReloadTests {
    /// The harness's config plus `count` TCP VIPs whose real has weight `weight`.
    private static func config(base: String, vips count: Int, weight: Int) -> String {
        base + (0..<count).map { index in
            "  - address: 198.18.101.\(index + 1)\n    port: 80\n    protocol: tcp\n    reals:\n"
                + "      - address: 198.18.3.21\n        weight: \(weight)\n"
        }.joined()
    }

    private func vipCount(_ harness: DaemonHarness) throws -> Int {
        try AdminJSON.decode([VipDocument].self, from: Data(harness.petrel(["vip", "list", "--json"]).output.utf8)).count
    }

    @Test("A file rewritten in place in small chunks while SIGHUPs arrive: no partial file is ever applied")
    func inPlaceRewriteUnderSIGHUP() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        let base = try String(contentsOfFile: harness.configPath, encoding: .utf8)
        try Self.config(base: base, vips: 12, weight: 1).write(toFile: harness.configPath, atomically: true, encoding: .utf8)
        try harness.start()
        #expect(try vipCount(harness) == 13)

        // Six rewrites in place (truncate, then 40-byte writes 4 ms apart), alternating the
        // weight so each whole file is a real change; a SIGHUP after every third write.
        // Cut anywhere, the file is often still valid YAML with fewer VIPs.
        var signals = 0
        for round in 0..<6 {
            let text = Array(Self.config(base: base, vips: 12, weight: round % 2 + 1).utf8)
            let fd = open(harness.configPath, O_WRONLY | O_TRUNC)
            try #require(fd >= 0)
            for (index, start) in stride(from: 0, to: text.count, by: 40).enumerated() {
                let chunk = text[start..<min(start + 40, text.count)]
                _ = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if index % 3 == 0 {
                    harness.signal(SIGHUP)
                    signals += 1
                }
                usleep(4_000)
            }
            close(fd)
        }
        #expect(signals >= 30)

        // The last file (weight 2) is applied once it has settled.
        try harness.waitUntil("the last file is applied", timeout: 20) {
            harness.petrel(["vip", "list"]).output.contains("198.18.3.21  weight 2")
        }
        #expect(try vipCount(harness) == 13)
        let reloads = harness.daemonLog.split(separator: "\n").filter { $0.contains("config reloaded") }
        #expect(!reloads.isEmpty)
        for line in reloads {
            #expect(line.contains("vips_removed=0") && line.contains("vips_added=0"), "a partial file was applied: \(line)")
        }
        #expect(!harness.daemonLog.contains("reload refused"), "a settled file was refused:\n\(harness.daemonLog)")
    }

    @Test("A file over the size limit is refused at once by reload and check; the running VIPs stay")
    func oversizedFile() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start()
        let before = harness.petrel(["vip", "list", "--json"]).output

        // Valid YAML: the config followed by comments, one byte over the limit.
        var text = try String(contentsOfFile: harness.configPath, encoding: .utf8)
        let line = "# " + String(repeating: "x", count: 1021) + "\n"
        text += String(repeating: line, count: (ConfigFile.maxBytes - text.utf8.count) / line.utf8.count)
        text += String(repeating: "#", count: ConfigFile.maxBytes + 1 - text.utf8.count)
        try text.write(toFile: harness.configPath, atomically: true, encoding: .utf8)

        let started = Date()
        let reload = harness.petrel(["reload"])
        #expect(Date().timeIntervalSince(started) < 5, "refusing took \(Date().timeIntervalSince(started)) s")
        #expect(reload.status != 0)
        #expect(reload.output.contains("more than the limit of \(ConfigFile.maxBytes) bytes (8 MiB)"), "\(reload.output)")
        #expect(harness.petrel(["vip", "list", "--json"]).output == before)
        #expect(harness.petrel(["status"]).output.contains("0 succeeded, 1 failed"))

        let check = try harness.capture(DaemonHarness.binaries + "/petrel", ["check", "--config", harness.configPath])
        #expect(check.status == 2, "petrel check exits 2 on a config it refuses: \(check.output)")
        #expect(check.output.contains("more than the limit"))
    }
}
