import Foundation
import Glibc
import PetrelAdmin
import Testing

/// Settings that shape the loaded program (here the interface) are not changed by a
/// reload: the running value is kept whole, and the reload and `petrel status` say so.
@Suite struct RestartOnlySettingTests {
    /// The interface MAC in the data plane's config map, as bpftool reads it from the pin.
    private func interfaceMACInConfigMap(_ harness: DaemonHarness) throws -> String {
        let result = try harness.capture("/usr/sbin/bpftool", ["-j", "map", "lookup", "pinned", harness.pinPath + "/config", "key", "0", "0", "0", "0"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any], "\(result.output)")
        let value = try #require(json["value"] as? [String], "\(result.output)")
        return value.prefix(6).map { String($0.dropFirst(2)) }.joined(separator: ":")  // "0x02" -> "02"
    }

    private func mac(of link: String, _ harness: DaemonHarness) throws -> String {
        try harness.inNamespaceOutput(["cat", "/sys/class/net/\(link)/address"]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("A reload that changes interface keeps the running one and its MAC, and says a restart is needed")
    func interfaceChangeNeedsARestart() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start()
        let original = try String(contentsOfFile: harness.configPath, encoding: .utf8)
        let veth0 = try mac(of: "veth0", harness)
        #expect(try veth0 != mac(of: "veth1", harness))
        #expect(try interfaceMACInConfigMap(harness) == veth0)

        try harness.installConfig(original.replacingOccurrences(of: "interface: veth0", with: "interface: veth1")
            .replacingOccurrences(of: "weight: 1", with: "weight: 3"))
        let reload = harness.petrel(["reload"])
        #expect(reload.status == 0, "\(reload.output)")
        #expect(reload.output.contains("not applied until petreld restarts: interface: veth1 in the file, veth0 running"), "\(reload.output)")
        #expect(try interfaceMACInConfigMap(harness) == veth0, "the running interface's MAC stays in the data plane")
        #expect(harness.petrel(["vip", "list"]).output.contains("198.18.3.11  weight 3"), "the reloadable settings are applied")

        let status = harness.petrel(["status"])
        #expect(status.output.contains("interface:    veth0"))
        #expect(status.output.contains("warning: the file changes a setting that needs a restart: interface: veth1 in the file, veth0 running"),
                "\(status.output)")
        // The program petreld reports is the one the kernel shows on veth0.
        let document = try AdminJSON.decode(StatusDocument.self, from: Data(harness.petrel(["status", "--json"]).output.utf8))
        let program = try #require(document.program)
        #expect(try harness.inNamespaceOutput(["ip", "link", "show", "veth0"]).contains("prog/xdp id \(program.id)"))
        #expect(status.output.contains("attached:     yes (program id \(program.id), tag \(program.tag))"))
        #expect(program.tag.count == 16)
        #expect(!(try harness.inNamespaceOutput(["ip", "link", "show", "veth1"])).contains("xdp"))

        // The file agrees with what runs again: the warning goes.
        try harness.installConfig(original)
        #expect(harness.petrel(["reload"]).status == 0)
        #expect(!harness.petrel(["status"]).output.contains("warning"))
        #expect(try AdminJSON.decode(StatusDocument.self, from: Data(harness.petrel(["status", "--json"]).output.utf8)).restartNeeded == nil)
    }
}

/// A restart that adopts the pinned maps, with the file unchanged, reports no change.
@Suite struct AdoptionReportTests {
    @Test("After adopting the pinned maps of the same config, the apply reports nothing changed")
    func adoptionReportsNoChange() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig(extraVips: """
              - address: 198.18.100.2
                port: 80
                protocol: tcp
                flags: [hash_without_source_port]
                reals:
                  - address: 198.18.3.11
                    weight: 2
                  - address: 198.18.3.13
                    weight: 5
              - address: 198.18.100.3
                port: 0
                protocol: tcp
                reals:
                  - address: 198.18.3.12
              - address: 198.18.100.4
                port: 443
                protocol: tcp

            """)
        try harness.start(keepForwarding: true)
        harness.signal(SIGKILL)
        try harness.waitForExit()
        try harness.start(keepForwarding: true)
        #expect(harness.petrel(["status"]).output.contains("adopted maps: yes"))
        let applied = harness.daemonLog.split(separator: "\n").filter { $0.contains("config applied") }
        #expect(applied.count == 2)
        let adoption = try #require(applied.last)
        #expect(adoption.contains("vips_changed=0") && adoption.contains("vips_added=0") && adoption.contains("ring_slots_changed=0"),
                "\(adoption)")
    }
}
