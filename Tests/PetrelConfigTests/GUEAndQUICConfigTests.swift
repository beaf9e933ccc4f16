import Petrel
import PetrelConfig
import Testing

/// The config file's GUE and QUIC settings: read into the configuration, written
/// back the same, and every mistake reported once at its field and line.
@Suite("GUE and QUIC settings in the config file")
struct GUEAndQUICConfigTests {
    static let good = minimalYAML + """
        encapsulation:
          gue_port: 7000
        vips:
          - address: 198.18.100.1
            port: 443
            protocol: udp
            flags: [quic]
            reals:
              - address: 198.18.3.11
                quic_server_id: 11
                encapsulation: gue
              - address: 198.18.3.12
                quic_server_id: 12
          - address: 198.18.100.1
            port: 80
            protocol: tcp
            reals:
              - address: 198.18.3.11
                encapsulation: gue
        """

    @Test("Read, defaults, and the rendered file reads back equal")
    func readsAndRoundTrips() throws {
        let config = try ConfigLoader.parse(yaml: Self.good, fileName: "test.yaml")
        #expect(config.guePort == 7000)
        let quic = try #require(config.vips.first)
        #expect(quic.flags == .quic)
        #expect(quic.reals.map(\.quicServerId) == [11, 12])
        #expect(quic.reals.map(\.encapsulation) == [.gue, .ipip])
        #expect(try ConfigLoader.parse(yaml: config.yaml, fileName: "rendered.yaml") == config)

        let plain = try ConfigLoader.parse(yaml: minimalYAML, fileName: "test.yaml")
        #expect(plain.guePort == 6080, "the documented default")
    }

    static let bad: [BadConfig] = [
        BadConfig("gue_port 0", minimalYAML + "encapsulation:\n  gue_port: 0\n", field: "encapsulation.gue_port", line: 5, "between 1 and 65535"),
        BadConfig("gue_port too large", minimalYAML + "encapsulation:\n  gue_port: 70000\n", field: "encapsulation.gue_port", line: 5, "got 70000"),
        BadConfig("unknown encapsulation", minimalYAML + """
            vips:
              - address: 198.18.100.1
                port: 80
                protocol: tcp
                reals:
                  - address: 198.18.3.11
                    encapsulation: vxlan
            """, field: "vips[0].reals[0].encapsulation", line: 10, "ipip, gue"),
        BadConfig("quic on TCP", minimalYAML + """
            vips:
              - address: 198.18.100.1
                port: 443
                protocol: tcp
                flags: [quic]
                reals:
                  - address: 198.18.3.11
                    quic_server_id: 1
            """, field: "vips[0].flags", line: 8, "needs protocol udp"),
        BadConfig("a real of a quic VIP without server id", minimalYAML + """
            vips:
              - address: 198.18.100.1
                port: 443
                protocol: udp
                flags: [quic]
                reals:
                  - address: 198.18.3.11
                    quic_server_id: 1
                  - address: 198.18.3.12
            """, field: "vips[0].reals[1].quic_server_id", line: 12, "must be set on every real of a quic VIP"),
        BadConfig("a server id twice in a VIP", minimalYAML + """
            vips:
              - address: 198.18.100.1
                port: 443
                protocol: udp
                flags: [quic]
                reals:
                  - address: 198.18.3.11
                    quic_server_id: 5
                  - address: 198.18.3.12
                    quic_server_id: 5
            """, field: "vips[0].reals[1].quic_server_id", line: 13, "must be unique in the VIP"),
        BadConfig("server id 0", minimalYAML + """
            vips:
              - address: 198.18.100.1
                port: 443
                protocol: udp
                flags: [quic]
                reals:
                  - address: 198.18.3.11
                    quic_server_id: 0
            """, field: "vips[0].reals[0].quic_server_id", line: 11, "between 1 and 65535"),
        BadConfig("a server id without the quic flag", minimalYAML + """
            vips:
              - address: 198.18.100.1
                port: 443
                protocol: udp
                reals:
                  - address: 198.18.3.11
                    quic_server_id: 3
            """, field: "vips[0].reals[0].quic_server_id", line: 10, "only used on a VIP with the quic flag"),
        BadConfig("one real, two encapsulations", minimalYAML + """
            vips:
              - address: 198.18.100.1
                port: 80
                protocol: tcp
                reals:
                  - address: 198.18.3.11
                    encapsulation: gue
              - address: 198.18.100.1
                port: 53
                protocol: udp
                reals:
                  - address: 198.18.3.11
            """, field: "vips[1].reals[0].encapsulation", line: 15, "must match vips[0].reals[0].encapsulation (gue)"),
    ]

    @Test("Each mistake is reported once, at its field and line", arguments: bad)
    func reportsTheMistake(_ bad: BadConfig) {
        let found = issues(in: bad.yaml)
        #expect(found.count == 1, "expected exactly one issue, got:\n\(ConfigError(issues: found))")
        let issue = found.first
        #expect(issue?.field == bad.field)
        #expect(issue?.line == bad.line)
        #expect(issue?.message.contains(bad.message) == true, "message was: \(issue?.message ?? "none")")
    }
}
