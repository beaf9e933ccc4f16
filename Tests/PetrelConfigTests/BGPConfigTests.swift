import Petrel
import PetrelConfig
import PetrelTestSupport
import Testing

/// The `bgp` section: a good one read whole (and rendered back), each mistake reported at its field.
@Suite("Config: bgp section")
struct BGPConfigTests {
    /// Lines 4-10: a valid section; cases replace one line of it.
    static let section = """
        bgp:
          local_asn: 65001
          router_id: 198.18.11.2
          hold_time: 3
          neighbors:
            - address: 198.18.11.1
              asn: 65000

        """

    @Test("A full section is read with every setting, and rendering gives it back")
    func readsAndRenders() throws {
        let yaml = minimalYAML + """
            bgp:
              local_asn: 4200000001
              router_id: 198.18.11.2
              hold_time: 9
              keepalive_time: 2
              connect_retry_time: 4
              drain_time: 30
              communities: ["65000:100", "65000:200"]
              med: 50
              neighbors:
                - address: 198.18.11.1
                  asn: 65000
                - address: "fd50:0:11::1"
                  asn: 65000
                  next_hop: "fd50:0:11::2"
              bird:
                control_socket: /run/petrel/lb.ctl
                config_file: /run/petrel/lb-bird.conf

            """
        let config = try ConfigLoader.parse(yaml: yaml)
        let bgp = try #require(config.bgp)
        #expect(bgp.localASN == 4_200_000_001 && bgp.holdTime == 9 && bgp.keepaliveTime == 2)
        #expect(bgp.connectRetryTime == 4 && bgp.drainTime == 30 && bgp.med == 50)
        #expect(bgp.communities.map(\.description) == ["65000:100", "65000:200"])
        #expect(bgp.neighbors.map(\.address) == [IPAddress("198.18.11.1")!, IPAddress("fd50:0:11::1")!])
        #expect(bgp.neighbors[1].nextHop == IPAddress("fd50:0:11::2"))
        #expect(bgp.bird.controlSocket == "/run/petrel/lb.ctl" && bgp.bird.binary == "/usr/sbin/bird")
        #expect(try ConfigLoader.parse(yaml: config.yaml) == config)
    }

    @Test("Defaults: keepalive a third of the hold time; no bgp section means no BGP")
    func defaults() throws {
        let bgp = try #require(try ConfigLoader.parse(yaml: minimalYAML + Self.section).bgp)
        #expect(bgp.keepaliveTime == 1 && bgp.drainTime == BGPConfiguration.Defaults.drainTime)
        #expect(try ConfigLoader.parse(yaml: minimalYAML).bgp == nil)
    }

    static let mistakes: [(String, String, String, Int, String)] = [
        // (what, line replaced -> replacement, field, line, message)
        ("local_asn: 65001", "local_asn: 0", "bgp.local_asn", 5, "between 1 and 4294967294"),
        ("local_asn: 65001", "local_asn: 4294967295", "bgp.local_asn", 5, "between 1 and 4294967294"),
        ("local_asn: 65001", "local_asn: 23456", "bgp.local_asn", 5, "AS_TRANS"),
        ("router_id: 198.18.11.2", "router_id: \"fd50::1\"", "bgp.router_id", 6, "must be an IPv4 address"),
        ("router_id: 198.18.11.2", "router_id: 0.0.0.0", "bgp.router_id", 6, "must not be 0.0.0.0"),
        ("hold_time: 3", "hold_time: 2", "bgp.hold_time", 7, "between 3 and 65535"),
        ("hold_time: 3", "hold_time: 0", "bgp.hold_time", 7, "between 3 and 65535"),
        ("hold_time: 3", "hold_time: 3\n  keepalive_time: 2", "bgp.keepalive_time", 8, "at most a third of hold_time"),
        ("hold_time: 3", "hold_time: 3\n  drain_time: 5000", "bgp.drain_time", 8, "between 0 and 3600"),
        ("hold_time: 3", "hold_time: 3\n  communities: [\"65536:1\"]", "bgp.communities[0]", 8, "standard community"),
        ("hold_time: 3", "hold_time: 3\n  med: -1", "bgp.med", 8, "between 0 and 4294967295"),
        ("hold_time: 3", "hold_time: 3\n  hold: 3", "bgp.hold", 8, "did you mean hold_time"),
        ("hold_time: 3", "hold_time: 3\n  bird: {control_socket: run/bird.ctl}", "bgp.bird.control_socket", 8, "absolute path"),
        ("      asn: 65000", "      asn: 70000000000", "bgp.neighbors[0].asn", 10, "between 1 and 4294967294"),
        ("      asn: 65000", "      asn: 65000\n      next_hop: \"fd50::2\"", "bgp.neighbors[0].next_hop", 11, "of the neighbor's family"),
        ("      asn: 65000", "      asn: 65000\n    - address: 198.18.11.1\n      asn: 65002", "bgp.neighbors[1].address", 11, "listed twice"),
        ("  neighbors:\n    - address: 198.18.11.1\n      asn: 65000", "  neighbors: []", "bgp.neighbors", 8, "at least one neighbor"),
    ]

    @Test("Each mistake is reported once, at its field and line", arguments: 0..<mistakes.count)
    func reportsTheMistake(_ n: Int) {
        let (old, new, field, line, message) = Self.mistakes[n]
        let yaml = minimalYAML + Self.section.replacingOccurrences(of: old, with: new)
        let found = issues(in: yaml)
        #expect(found.count == 1, "\(new): \(found)")
        #expect(found.first?.field == field, "\(new): \(found)")
        #expect(found.first?.line == line, "\(new): \(found)")
        #expect(found.first?.message.contains(message) == true, "\(new): \(found.first?.message ?? "none")")
    }
}
