import PetrelConfig
import Testing
import PetrelTestSupport

/// One config with one mistake, and where and how the loader must report it.
struct BadConfig: Sendable, CustomTestStringConvertible {
    let name: String
    let yaml: String
    let field: String
    let line: Int
    /// Text the message must contain: the bad value or what was expected.
    let message: String

    init(_ name: String, _ yaml: String, field: String, line: Int, _ message: String) {
        self.name = name
        self.yaml = yaml
        self.field = field
        self.line = line
        self.message = message
    }

    var testDescription: String { name }
}

// Lines 1-3 of every `minimalYAML + ...` case are the minimal config; its additions start on line 4.
let badConfigs: [BadConfig] = [
    // MARK: YAML itself
    BadConfig("YAML syntax: bad indentation", """
        interface: eth0
        next_hop:
          mac: "02:00:00:00:02:01"
         gateway: 198.18.2.1
        """, field: "", line: 4, "invalid YAML"),
    BadConfig("YAML syntax: unclosed flow list", minimalYAML + """
        vips: [
        """, field: "", line: 5, "invalid YAML"),
    BadConfig("YAML syntax: tab indentation", "interface: eth0\nnext_hop:\n\tmac: \"02:00:00:00:02:01\"\n",
              field: "", line: 3, "YAML does not allow tabs"),
    BadConfig("YAML syntax: unquoted IPv6 prefix ending in ::", minimalYAML + """
        encapsulation:
          source_v6: fd50:0:ffff::
        """, field: "", line: 5, "quote values that contain"),
    BadConfig("YAML syntax: control character", "interface: eth0\nnext_hop:\n  mac: \"02:00\u{01}\"\n",
              field: "", line: 3, "control characters are not allowed"),
    BadConfig("two documents in one file", minimalYAML + """
        ---
        interface: eth1
        """, field: "", line: 4, "but found another document"),
    BadConfig("merge key", minimalYAML + """
        vips:
          - <<: {flags: [lru_bypass]}
            address: 198.18.100.1
            port: 80
            protocol: tcp
        """, field: "vips[0].<<", line: 5, "merge keys (<<) are not supported"),
    BadConfig("document is a list", """
        - interface: eth0
        """, field: "", line: 1, "must be a mapping of settings"),
    BadConfig("key set twice", minimalYAML + """
        interface: eth1
        """, field: "interface", line: 4, "is set twice; the first is on line 1"),

    // MARK: Unknown keys
    BadConfig("unknown top-level key", minimalYAML + """
        ringsize: 65537
        """, field: "ringsize", line: 4, "did you mean ring_size?"),
    BadConfig("camelCase key", minimalYAML + """
        maxVips: 10
        """, field: "maxVips", line: 4, "did you mean max_vips?"),
    BadConfig("unknown key in next_hop", """
        interface: eth0
        next_hop:
          mac: "02:00:00:00:02:01"
          mak: "02:00:00:00:02:02"
        """, field: "next_hop.mak", line: 4, "unknown key; expected one of mac, gateway"),
    BadConfig("unknown key in a VIP", minimalYAML + """
        vips:
          - address: 198.18.100.1
            port: 80
            protocol: tcp
            proto: tcp
        """, field: "vips[0].proto", line: 8, "unknown key; expected one of address, port, protocol, flags, health_check, reals, source_routes (did you mean protocol?)"),
    BadConfig("unknown key in a real", minimalYAML + """
        vips:
          - address: 198.18.100.1
            port: 80
            protocol: tcp
            reals:
              - address: 198.18.3.11
                wieght: 3
        """, field: "vips[0].reals[0].wieght", line: 10, "did you mean weight?"),

    // MARK: Required keys
    BadConfig("interface missing", """
        next_hop:
          mac: "02:00:00:00:02:01"
        """, field: "interface", line: 1, "required key is missing"),
    BadConfig("interface without a value", """
        interface:
        next_hop:
          mac: "02:00:00:00:02:01"
        """, field: "interface", line: 1, "required key has no value"),
    BadConfig("next_hop missing", """
        interface: eth0
        ring_size: 65537
        """, field: "next_hop", line: 1, "required key is missing"),
    BadConfig("VIP without address", minimalYAML + """
        vips:
          - port: 80
            protocol: tcp
        """, field: "vips[0].address", line: 5, "required key is missing"),
    BadConfig("VIP without protocol", minimalYAML + """
        vips:
          - address: 198.18.100.1
            port: 80
        """, field: "vips[0].protocol", line: 5, "required key is missing"),

    // MARK: Interface and attachment
    BadConfig("interface name too long", """
        interface: a-very-long-interface-name
        next_hop:
          mac: "02:00:00:00:02:01"
        """, field: "interface", line: 1, "1 to 15 characters"),
    BadConfig("interface is a list", """
        interface: [eth0, eth1]
        next_hop:
          mac: "02:00:00:00:02:01"
        """, field: "interface", line: 1, "must be a string, got a list"),
    BadConfig("attach_mode not allowed", minimalYAML + """
        attach_mode: skb
        """, field: "attach_mode", line: 4, "must be one of native, generic; got \"skb\""),

    // MARK: Next hop
    BadConfig("next_hop with both mac and gateway", """
        interface: eth0
        next_hop:
          mac: "02:00:00:00:02:01"
          gateway: 198.18.2.1
        """, field: "next_hop", line: 3, "exactly one of mac or gateway, not both"),
    BadConfig("next_hop with neither", """
        interface: eth0
        next_hop: {}
        """, field: "next_hop", line: 2, "neither is set"),
    BadConfig("MAC with five bytes", """
        interface: eth0
        next_hop:
          mac: "02:00:00:00:02"
        """, field: "next_hop.mac", line: 3, "got the string \"02:00:00:00:02\""),
    BadConfig("MAC with a non-hex digit", """
        interface: eth0
        next_hop:
          mac: "02:00:00:00:02:0g"
        """, field: "next_hop.mac", line: 3, "six two-digit hex bytes"),
    BadConfig("broadcast MAC", """
        interface: eth0
        next_hop:
          mac: "ff:ff:ff:ff:ff:ff"
        """, field: "next_hop.mac", line: 3, "must be a unicast MAC address"),
    BadConfig("gateway not an IP address", """
        interface: eth0
        next_hop:
          gateway: 198.18.2.300
        """, field: "next_hop.gateway", line: 3, "must be an IPv4 or IPv6 address, got \"198.18.2.300\""),

    // MARK: Encapsulation
    BadConfig("IPv4 source prefix given as IPv6", minimalYAML + """
        encapsulation:
          source_v4: "fd50::"
        """, field: "encapsulation.source_v4", line: 5, "must be an IPv4 address, got fd50::"),
    BadConfig("IPv6 source prefix given as IPv4", minimalYAML + """
        encapsulation:
          source_v6: 198.19.0.0
        """, field: "encapsulation.source_v6", line: 5, "must be an IPv6 address, got 198.19.0.0"),
    BadConfig("IPv4 source prefix with host bits", minimalYAML + """
        encapsulation:
          source_v4: 198.19.1.2
        """, field: "encapsulation.source_v4", line: 5, "did you mean 198.19.0.0?"),

    // MARK: Sizes
    BadConfig("ring_size not prime", minimalYAML + """
        ring_size: 65536
        """, field: "ring_size", line: 4, "must be a prime number (Maglev needs it), got 65536; the nearest primes are 65521 and 65537"),
    BadConfig("ring_size below 2", minimalYAML + """
        ring_size: 1
        """, field: "ring_size", line: 4, "must be between 2 and 1000003, got 1"),
    BadConfig("ring_size above the limit", minimalYAML + """
        ring_size: 1000033
        """, field: "ring_size", line: 4, "must be between 2 and 1000003, got 1000033"),
    BadConfig("ring_size not a number", minimalYAML + """
        ring_size: large
        """, field: "ring_size", line: 4, "must be an integer, got \"large\""),
    BadConfig("ring_size too small for a VIP's reals", minimalYAML + """
        ring_size: 3
        vips:
          - address: 198.18.100.1
            port: 80
            protocol: tcp
            reals:
              - address: 198.18.3.11
              - address: 198.18.3.12
              - address: 198.18.3.13
        """, field: "vips[0].reals", line: 10, "must be fewer than ring_size (3) reals, got 3 reals"),
    BadConfig("connection_table_size zero", minimalYAML + """
        connection_table_size: 0
        """, field: "connection_table_size", line: 4, "must be between 1 and 16777216, got 0"),
    BadConfig("max_vips too large", minimalYAML + """
        max_vips: 70000
        """, field: "max_vips", line: 4, "must be between 1 and 65536, got 70000"),
    BadConfig("max_reals below 2", minimalYAML + """
        max_reals: 1
        """, field: "max_reals", line: 4, "must be between 2 and 1048576, got 1"),
    BadConfig("ring map over 2^31 slots", minimalYAML + """
        ring_size: 1000003
        max_vips: 4096
        """, field: "max_vips", line: 5, "4096 × 1000003 = 4096012288 ring slots"),
    BadConfig("integer with a leading zero", minimalYAML + """
        max_vips: 010
        """, field: "max_vips", line: 4, "without leading zeros"),
    BadConfig("mtu too small", minimalYAML + """
        mtu: 576
        """, field: "mtu", line: 4, "must be between 1280 and 9216, got 576"),
    BadConfig("syn_flood_threshold negative", minimalYAML + """
        syn_flood_threshold: -1
        """, field: "syn_flood_threshold", line: 4, "must be between 0 and 4294967295, got -1"),
    BadConfig("icmp.echo_reply not a boolean", minimalYAML + """
        icmp:
          echo_reply: yes
        """, field: "icmp.echo_reply", line: 5, "must be true or false"),
    BadConfig("icmp.too_big quoted", minimalYAML + """
        icmp:
          too_big: "false"
        """, field: "icmp.too_big", line: 5, "must be true or false"),
    BadConfig("icmp.rate_limit negative", minimalYAML + """
        icmp:
          rate_limit: -5
        """, field: "icmp.rate_limit", line: 5, "must be between 0 and 4294967295, got -5"),
    BadConfig("icmp unknown key", minimalYAML + """
        icmp:
          echo: true
        """, field: "icmp.echo", line: 5, "echo_reply"),
    BadConfig("mtu quoted", minimalYAML + """
        mtu: "1500"
        """, field: "mtu", line: 4, "must be an integer, got the string \"1500\""),

    // MARK: Daemon plumbing
    BadConfig("pin_path relative", minimalYAML + """
        pin_path: bpf/petrel
        """, field: "pin_path", line: 4, "must be an absolute path, got \"bpf/petrel\""),
    BadConfig("admin socket path too long", minimalYAML + """
        admin:
          socket: /run/petrel/\(String(repeating: "s", count: 100)).sock
        """, field: "admin.socket", line: 5, "must be at most 107 bytes"),
    BadConfig("admin.tcp on every address", minimalYAML + """
        admin:
          tcp: 0.0.0.0:9180
        """, field: "admin.tcp", line: 5, "must be on a loopback address (127.0.0.0/8 or ::1), got 0.0.0.0"),
    BadConfig("metrics on a public address", minimalYAML + """
        metrics:
          listen: 198.18.0.5:9181
        """, field: "metrics.listen", line: 5, "must be on a loopback address"),
    BadConfig("metrics without a port", minimalYAML + """
        metrics:
          listen: 127.0.0.1
        """, field: "metrics.listen", line: 5, "must be host:port"),
    BadConfig("metrics port out of range", minimalYAML + """
        metrics:
          listen: 127.0.0.1:70000
        """, field: "metrics.listen", line: 5, "port must be between 1 and 65535, got \"70000\""),
    BadConfig("metrics on the admin endpoint", minimalYAML + """
        admin:
          tcp: 127.0.0.1:9180
        metrics:
          listen: 127.0.0.1:9180
        """, field: "metrics.listen", line: 7, "is already the admin.tcp endpoint"),

    // MARK: VIPs
    BadConfig("vips is a mapping", minimalYAML + """
        vips:
          address: 198.18.100.1
        """, field: "vips", line: 5, "must be a list, got a mapping"),
    BadConfig("VIP address not an IP", minimalYAML + """
        vips:
          - address: 198.18.100.256
            port: 80
            protocol: tcp
        """, field: "vips[0].address", line: 5, "got \"198.18.100.256\""),
    BadConfig("VIP address multicast", minimalYAML + """
        vips:
          - address: 224.0.0.1
            port: 80
            protocol: tcp
        """, field: "vips[0].address", line: 5, "must be a unicast host address, got 224.0.0.1 (multicast)"),
    BadConfig("VIP address unspecified", minimalYAML + """
        vips:
          - address: 0.0.0.0
            port: 80
            protocol: tcp
        """, field: "vips[0].address", line: 5, "must be a unicast host address, got 0.0.0.0 (unspecified)"),
    BadConfig("VIP address broadcast", minimalYAML + """
        vips:
          - address: 255.255.255.255
            port: 80
            protocol: tcp
        """, field: "vips[0].address", line: 5, "got 255.255.255.255 (broadcast)"),
    BadConfig("VIP address reserved", minimalYAML + """
        vips:
          - address: 240.0.0.1
            port: 80
            protocol: tcp
        """, field: "vips[0].address", line: 5, "got 240.0.0.1 (reserved)"),
    BadConfig("VIP address loopback", minimalYAML + """
        vips:
          - address: "::1"
            port: 80
            protocol: tcp
        """, field: "vips[0].address", line: 5, "got ::1 (loopback)"),
    BadConfig("real address multicast", minimalYAML + """
        vips:
          - address: 198.18.100.1
            port: 80
            protocol: tcp
            reals:
              - address: 224.0.0.5
        """, field: "vips[0].reals[0].address", line: 9, "got 224.0.0.5 (multicast)"),
    BadConfig("real address loopback", minimalYAML + """
        vips:
          - address: 198.18.100.1
            port: 80
            protocol: tcp
            reals:
              - address: 198.18.3.11
              - address: 127.0.0.1
        """, field: "vips[0].reals[1].address", line: 10, "got 127.0.0.1 (loopback)"),
    BadConfig("gateway loopback", """
        interface: eth0
        next_hop:
          gateway: 127.0.0.1
        """, field: "next_hop.gateway", line: 3, "got 127.0.0.1 (loopback)"),
    BadConfig("port above 65535", minimalYAML + """
        vips:
          - address: 198.18.100.1
            port: 70000
            protocol: tcp
        """, field: "vips[0].port", line: 6, "must be between 0 and 65535 (0: every port), got 70000"),
    BadConfig("port negative", minimalYAML + """
        vips:
          - address: 198.18.100.1
            port: -1
            protocol: tcp
        """, field: "vips[0].port", line: 6, "must be between 0 and 65535 (0: every port), got -1"),
    BadConfig("protocol not tcp or udp", minimalYAML + """
        vips:
          - address: 198.18.100.1
            port: 80
            protocol: sctp
        """, field: "vips[0].protocol", line: 7, "must be one of tcp, udp; got \"sctp\""),
    BadConfig("unknown flag", minimalYAML + """
        vips:
          - address: 198.18.100.1
            port: 80
            protocol: tcp
            flags: [lru_bypass, sticky]
        """, field: "vips[0].flags[1]", line: 8, "unknown flag \"sticky\"; expected one of hash_without_source_port"),
    BadConfig("flags not a list", minimalYAML + """
        vips:
          - address: 198.18.100.1
            port: 80
            protocol: tcp
            flags: lru_bypass
        """, field: "vips[0].flags", line: 8, "must be a list, got \"lru_bypass\""),
    BadConfig("duplicate VIP", minimalYAML + """
        vips:
          - address: 198.18.100.1
            port: 80
            protocol: tcp
          - address: 198.18.100.1
            port: 80
            protocol: udp
          - address: 198.18.100.1
            port: 80
            protocol: tcp
        """, field: "vips[2]", line: 11, "duplicate VIP tcp/198.18.100.1:80: the same address, port and protocol as vips[0] on line 5"),
    BadConfig("too many VIPs for max_vips", minimalYAML + """
        max_vips: 1
        vips:
          - address: 198.18.100.1
            port: 80
            protocol: tcp
          - address: 198.18.100.1
            port: 443
            protocol: tcp
        """, field: "vips", line: 6, "lists 2 VIPs but max_vips is 1"),

    // MARK: Reals
    BadConfig("real listed twice in a VIP", minimalYAML + """
        vips:
          - address: 198.18.100.1
            port: 80
            protocol: tcp
            reals:
              - address: 198.18.3.11
              - address: 198.18.3.12
              - address: 198.18.3.11
        """, field: "vips[0].reals[2].address", line: 11, "must not repeat a real of this VIP (it is reals[0] too), got 198.18.3.11"),
    BadConfig("IPv4 real behind an IPv6 VIP", minimalYAML + """
        vips:
          - address: "fd50:0:100::1"
            port: 80
            protocol: tcp
            reals:
              - address: 198.18.3.11
        """, field: "vips[0].reals[0].address", line: 9, "must be IPv6 for the IPv6 VIP fd50:0:100::1 (IPv6 packets cannot travel inside IPv4), got 198.18.3.11"),
    BadConfig("weight too large", minimalYAML + """
        vips:
          - address: 198.18.100.1
            port: 80
            protocol: tcp
            reals:
              - address: 198.18.3.11
                weight: 2000000
        """, field: "vips[0].reals[0].weight", line: 10, "must be between 0 and 1000000, got 2000000"),
    BadConfig("weight fractional", minimalYAML + """
        vips:
          - address: 198.18.100.1
            port: 80
            protocol: tcp
            reals:
              - address: 198.18.3.11
                weight: 1.5
        """, field: "vips[0].reals[0].weight", line: 10, "must be an integer between 0 and 1000000, got 1.5"),
    BadConfig("real given as a bare address", minimalYAML + """
        vips:
          - address: 198.18.100.1
            port: 80
            protocol: tcp
            reals:
              - 198.18.3.11
        """, field: "vips[0].reals[0]", line: 9, "must be a mapping of address, weight, encapsulation, quic_server_id, health_check; got \"198.18.3.11\""),
    BadConfig("more reals than max_reals allows", minimalYAML + """
        max_reals: 2
        vips:
          - address: 198.18.100.1
            port: 80
            protocol: tcp
            reals:
              - address: 198.18.3.11
          - address: 198.18.100.1
            port: 443
            protocol: tcp
            reals:
              - address: 198.18.3.11
              - address: 198.18.3.12
        """, field: "vips", line: 6, "the VIPs use 2 distinct real addresses but max_reals 2 leaves room for 1"),
]

@Suite("Bad configs")
struct BadConfigTests {
    @Test("Each mistake is reported once, at its field and line", arguments: badConfigs)
    func reportsTheMistake(_ bad: BadConfig) {
        let found = issues(in: bad.yaml)
        #expect(found.count == 1, "expected exactly one issue, got:\n\(ConfigError(issues: found))")
        let issue = found.first
        #expect(issue?.field == bad.field)
        #expect(issue?.line == bad.line)
        #expect(issue?.message.contains(bad.message) == true, "message was: \(issue?.message ?? "none")")
        #expect(issue?.file == "test.yaml")
    }

    @Test func theTableIsLargeAndItsNamesDistinct() {
        #expect(badConfigs.count >= 30)
        #expect(Set(badConfigs.map(\.name)).count == badConfigs.count)
    }
}
