import Foundation
import PetrelAdmin
import Testing

/// `petrel vip add` creates, `petrel vip set` replaces, and neither empties a live
/// VIP by accident; both say what changed.
@Suite struct VipCommandTests {
    private func reals(_ harness: DaemonHarness, _ vip: String) throws -> [String: UInt32] {
        let vips = try AdminJSON.decode([VipDocument].self, from: Data(harness.petrel(["vip", "list", "--json"]).output.utf8))
        let document = try #require(vips.first { "\($0.protocol)/\($0.address):\($0.port)" == vip })
        return Dictionary(uniqueKeysWithValues: (document.reals ?? []).map { ($0.address, $0.weight ?? 1) })
    }

    @Test("vip add never replaces a live VIP; vip set replaces it and lists each change; no reals only when asked")
    func addAndSet() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start()
        let vip = "udp/198.18.100.1:53"
        let live = ["198.18.3.11": UInt32(1), "198.18.3.12": 1]
        #expect(try reals(harness, vip) == live)

        // The reported defect: no --real on a live VIP emptied it ("applied with 0 real(s)", exit 0).
        let bare = harness.petrel(["vip", "add", vip])
        #expect(bare.status == 64, "\(bare.output)")
        #expect(bare.output.contains("--no-reals"), "\(bare.output)")
        #expect(try reals(harness, vip) == live)

        let again = harness.petrel(["vip", "add", vip, "--real", "198.18.3.13"])
        #expect(again.status == 1)
        #expect(again.output.contains("VIP \(vip) already exists: `petrel vip set` replaces it whole"), "\(again.output)")
        #expect(try reals(harness, vip) == live)
        #expect(harness.petrel(["vip", "set", vip, "--no-reals", "--real", "198.18.3.13"]).status == 64)

        let set = harness.petrel(["vip", "set", vip, "--real", "198.18.3.11=3", "--real", "198.18.3.13", "--flag", "lru_bypass"])
        #expect(set.status == 0, "\(set.output)")
        #expect(set.output == """
            VIP \(vip) updated:
              real 198.18.3.13 (weight 1) added
              real 198.18.3.12 removed
              real 198.18.3.11 weight 1 -> 3
              flags none -> lru_bypass

            """, "\(set.output)")
        #expect(try reals(harness, vip) == ["198.18.3.11": 3, "198.18.3.13": 1])
        #expect(harness.petrel(["vip", "set", vip, "--real", "198.18.3.11=3", "--real", "198.18.3.13", "--flag", "lru_bypass"]).output
            == "VIP \(vip) unchanged\n")

        let emptied = harness.petrel(["vip", "set", vip, "--no-reals", "--flag", "lru_bypass"])
        #expect(emptied.status == 0)
        #expect(emptied.output.contains("no reals left: its traffic is dropped"), "\(emptied.output)")
        #expect(try reals(harness, vip).isEmpty)

        let created = harness.petrel(["vip", "add", "tcp/198.18.100.5:80", "--real", "198.18.3.11=2"])
        #expect(created.output == "VIP tcp/198.18.100.5:80 created with 1 real(s): 198.18.3.11 (weight 2)\n", "\(created.output)")
        let createdEmpty = harness.petrel(["vip", "add", "tcp/198.18.100.6:80", "--no-reals"])
        #expect(createdEmpty.output.contains("created with no reals"), "\(createdEmpty.output)")
    }
}
