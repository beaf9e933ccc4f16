import CPetrelABI
import Petrel
import PetrelConfig
import Testing
import PetrelTestSupport

@Suite("Defaults")
struct DefaultsTests {
    @Test("A file with only the required keys gets every default")
    func minimalFileGetsDefaults() throws {
        let config = try ConfigLoader.parse(yaml: minimalYAML, fileName: "minimal.yaml")
        #expect(config == PetrelConfiguration(interface: "eth0", nextHop: .mac(MACAddress(2, 0, 0, 0, 2, 1))))
        #expect(config.attachMode == .native)
        #expect(config.encapSourceV4 == IPAddress("198.19.0.0"))
        #expect(config.encapSourceV6 == IPAddress("fd50:0:ffff::"))
        #expect(config.ringSize == 65_537)
        #expect(config.connectionTableSize == 65_536)
        #expect(config.maxVips == 512)
        #expect(config.maxReals == 4_096)
        #expect(config.mtu == nil)
        #expect(config.pinPath == "/sys/fs/bpf/petrel")
        #expect(config.adminSocket == "/run/petrel/admin.sock")
        #expect(config.adminTCP == nil)
        #expect(config.metricsListen == nil)
        #expect(config.vips.isEmpty)
        #expect(config.icmpEchoReply && config.icmpTooBig && config.icmpRateLimit == 1_000, "ICMP answers on, as Katran")
    }

    @Test("The icmp section: each key read, the rest at its default")
    func icmpSection() throws {
        let config = try ConfigLoader.parse(yaml: minimalYAML + """
            icmp:
              echo_reply: false
              rate_limit: 0
            """, fileName: "icmp.yaml")
        #expect(!config.icmpEchoReply && config.icmpTooBig && config.icmpRateLimit == 0)
        #expect(try ConfigLoader.parse(yaml: config.yaml, fileName: "rendered.yaml") == config)
    }

    @Test("Defaults agree with the data-plane header")
    func defaultsMatchTheABI() {
        typealias Defaults = PetrelConfiguration.Defaults
        #expect(Defaults.ringSize == Int(PETREL_DEFAULT_RING_SIZE))
        #expect(Defaults.connectionTableSize == Int(PETREL_DEFAULT_CONN_TABLE_SIZE))
        #expect(Defaults.maxVips == Int(PETREL_DEFAULT_MAX_VIPS))
        #expect(Defaults.maxReals == Int(PETREL_DEFAULT_MAX_REALS))
    }

    @Test("Defaults written out explicitly read back the same")
    func explicitDefaultsEqualOmittedOnes() throws {
        let explicit = """
            interface: eth0
            attach_mode: native
            next_hop:
              mac: "02:00:00:00:02:01"
            encapsulation:
              source_v4: 198.19.0.0
              source_v6: "fd50:0:ffff::"
            ring_size: 65537
            connection_table_size: 65536
            max_vips: 512
            max_reals: 4096
            pin_path: /sys/fs/bpf/petrel
            admin:
              socket: /run/petrel/admin.sock
            vips: []
            """
        #expect(try ConfigLoader.parse(yaml: explicit) == ConfigLoader.parse(yaml: minimalYAML))
    }

    @Test("Rendering the defaults gives text that parses to the same configuration")
    func defaultsRoundTrip() throws {
        let config = PetrelConfiguration(interface: "eth0", nextHop: .mac(MACAddress(2, 0, 0, 0, 2, 1)))
        let text = config.yaml
        #expect(text.contains("ring_size: 65537\n"))
        #expect(text.contains("source_v6: \"fd50:0:ffff::\"\n"))
        #expect(!text.contains("mtu:"))
        #expect(try ConfigLoader.parse(yaml: text) == config)
    }

    @Test("Every setting changed from its default survives a round trip")
    func everythingRoundTrips() throws {
        let config = PetrelConfiguration(
            interface: "on", // a YAML boolean when unquoted: rendering must quote it
            nextHop: .gateway(IPAddress("fd00::1")!),
            attachMode: .generic,
            encapSourceV4: IPAddress("10.9.0.0")!,
            encapSourceV6: IPAddress("2001:db8:1:2::")!,
            mtu: 9000,
            ringSize: 13,
            connectionTableSize: 1,
            maxVips: 3,
            maxReals: 5,
            pinPath: "/sys/fs/bpf/other path",
            adminSocket: "/tmp/a.sock",
            adminTCP: .init(host: "::1", port: 1),
            metricsListen: .init(host: "127.0.0.2", port: 65_535),
            vips: [
                Vip(key: VipKey(address: IPAddress("10.0.0.1")!, port: 65_535, proto: .udp),
                    flags: [.hashWithoutSourcePort, .hashDestinationPortOnly, .lruBypass],
                    reals: [Real(address: IPAddress("2001:db8::5")!, weight: 0),
                            Real(address: IPAddress("10.0.0.5")!, weight: 1_000_000)]),
                Vip(key: VipKey(address: IPAddress("2001:db8::1")!, port: 0, proto: .tcp)),
            ])
        #expect(try ConfigLoader.parse(yaml: config.yaml) == config)
    }
}
