import Foundation
import Petrel
import PetrelConfig
import Testing
import PetrelTestSupport

@Suite("Reporting")
struct ReportingTests {
    @Test("An issue reads file:line:column: field: message")
    func issueDescription() {
        let issue = ConfigIssue(file: "demo.yaml", line: 14, column: 9, field: "vips[2].reals[0].weight",
                                message: "must be between 0 and 1000000, got 2000000")
        #expect(issue.description == "demo.yaml:14:9: vips[2].reals[0].weight: must be between 0 and 1000000, got 2000000")
        let whole = ConfigIssue(file: "gone.yaml", line: 0, column: 0, field: "", message: "cannot read")
        #expect(whole.description == "gone.yaml: cannot read")
    }

    @Test("The column points at the bad value")
    func columnOfTheValue() {
        let found = issues(in: minimalYAML + """
            vips:
              - address: 198.18.100.1
                port: 80
                protocol: tcp
                reals:
                  - address: 198.18.3.11
                    weight: 2000000
            """)
        #expect(found.map(\.description) == [
            "test.yaml:10:17: vips[0].reals[0].weight: must be between 0 and 1000000, got 2000000",
        ])
    }

    @Test("Every mistake in a file is reported, in file order")
    func allIssuesAtOnce() throws {
        let yaml = """
            interface: eth0
            attach_mode: fast
            next_hop:
              mac: "02:00:00:00:02:01"
              gateway: 198.18.2.1
            ring_size: 65536
            colour: blue
            admin:
              tcp: 0.0.0.0:9180
            vips:
              - address: "fd50:0:100::1"
                port: 80
                protocol: tcp
                reals:
                  - address: 198.18.3.11
                  - address: "fd50:0:3::12"
                    weight: -1
              - address: 198.18.100.1
                port: 99999
                protocol: icmp
            """
        let found = issues(in: yaml)
        let located = found.map { "\($0.line) \($0.field)" }
        #expect(located == [
            "2 attach_mode",
            "4 next_hop",
            "6 ring_size",
            "7 colour",
            "9 admin.tcp",
            "15 vips[0].reals[0].address",
            "17 vips[0].reals[1].weight",
            "19 vips[1].port",
            "20 vips[1].protocol",
        ])
        do {
            _ = try ConfigLoader.parse(yaml: yaml, fileName: "many.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.description.split(separator: "\n").count == 9)
            #expect(error.description.hasPrefix("many.yaml:2:14: attach_mode: must be one of native, generic; got \"fast\""))
        }
    }

    @Test("A VIP whose parts are wrong does not also count as a duplicate or hide others' mistakes")
    func noCascades() {
        let found = issues(in: minimalYAML + """
            vips:
              - address: 198.18.100.1
                port: 80
                protocol: tcp
              - address: 198.18.100.1
                port: 80
                protocol: tpc
              - address: 198.18.100.1
                port: 80
                protocol: tcp
            """)
        #expect(found.map(\.field) == ["vips[1].protocol", "vips[2]"])
    }
}

@Suite("Accepted configs")
struct AcceptedConfigTests {
    @Test("An empty or absent VIP list is valid", arguments: ["vips: []\n", "vips:\n", ""])
    func emptyVips(_ tail: String) throws {
        #expect(try ConfigLoader.parse(yaml: minimalYAML + tail).vips.isEmpty)
    }

    @Test("Redundant hash flags, drained reals, 4in6 and port 0 are all fine")
    func permissiveCases() throws {
        let config = try ConfigLoader.parse(yaml: minimalYAML + """
            vips:
              - address: 198.18.100.1
                port: 0
                protocol: udp
                flags: [hash_destination_port_only, hash_without_source_port]
                reals:
                  - address: "fd50:0:3::11"
                    weight: 0
                  - address: 198.18.3.12
                    weight: 1_000_000
            """)
        let vip = try #require(config.vips.first)
        #expect(vip.flags == [.hashDestinationPortOnly, .hashWithoutSourcePort])
        #expect(vip.reals.map(\.weight) == [0, 1_000_000])
    }

    @Test("A gateway next hop and an IPv6 loopback admin endpoint")
    func gatewayAndIPv6Loopback() throws {
        let config = try ConfigLoader.parse(yaml: """
            interface: veth0
            attach_mode: generic
            next_hop:
              gateway: "fd50:0:2::1"
            admin:
              tcp: "[::1]:9180"
            """)
        #expect(config.nextHop == .gateway(IPAddress("fd50:0:2::1")!))
        #expect(config.adminTCP?.description == "[::1]:9180")
        #expect(config.attachMode == .generic)
    }

    @Test("Anchors and aliases work: one reals list shared by two VIPs")
    func anchorsAndAliases() throws {
        let config = try ConfigLoader.parse(yaml: minimalYAML + """
            vips:
              - address: 198.18.100.1
                port: 80
                protocol: tcp
                reals: &web
                  - address: 198.18.3.11
                  - address: 198.18.3.12
                    weight: 3
              - address: 198.18.100.1
                port: 443
                protocol: tcp
                reals: *web
            """)
        #expect(config.vips.count == 2)
        #expect(config.vips[1].reals == config.vips[0].reals)
        #expect(config.vips[1].reals.map(\.weight) == [1, 3])
    }

    @Test("An unquoted MAC that YAML 1.1 would read as a base-60 number is still a MAC")
    func unquotedMAC() throws {
        let config = try ConfigLoader.parse(yaml: "interface: eth0\nnext_hop:\n  mac: 10:20:30:40:50:56\n")
        #expect(config.nextHop == .mac(MACAddress(0x10, 0x20, 0x30, 0x40, 0x50, 0x56)))
    }

    @Test("The same real may serve several VIPs; it counts once against max_reals")
    func sharedRealsCountOnce() throws {
        let config = try ConfigLoader.parse(yaml: minimalYAML + """
            max_reals: 2
            vips:
              - address: 198.18.100.1
                port: 80
                protocol: tcp
                reals: [{address: 198.18.3.11}]
              - address: 198.18.100.1
                port: 443
                protocol: tcp
                reals: [{address: 198.18.3.11}]
            """)
        #expect(config.vips.count == 2)
    }
}

@Suite("Reading files")
struct FileTests {
    @Test("A missing file is one issue naming the path")
    func missingFile() {
        do {
            _ = try ConfigLoader.load(path: "/nonexistent/petrel.yaml")
            Issue.record("accepted a missing file")
        } catch {
            #expect(error.issues.count == 1)
            #expect(error.description == "/nonexistent/petrel.yaml: cannot read the config file: it does not exist")
        }
    }

    @Test("A directory is refused")
    func directory() {
        do {
            _ = try ConfigLoader.load(path: NSTemporaryDirectory())
            Issue.record("accepted a directory")
        } catch {
            #expect(error.issues.first?.message.contains("is a directory") == true)
        }
    }

    @Test("Issues from a file carry its path")
    func pathInIssues() throws {
        let path = NSTemporaryDirectory() + "petrel-config-test-\(getpid()).yaml"
        try (minimalYAML + "mtu: 10\n").write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try ConfigLoader.load(path: path)
            Issue.record("accepted mtu 10")
        } catch {
            #expect(error.issues.map(\.description) == ["\(path):4:6: mtu: must be between 1280 and 9216, got 10"])
        }
    }

    @Test("A file that is not UTF-8 is refused")
    func notUTF8() throws {
        let path = NSTemporaryDirectory() + "petrel-config-latin1-\(getpid()).yaml"
        try Data([0x69, 0x6e, 0x74, 0x65, 0x72, 0x66, 0x61, 0x63, 0x65, 0x3a, 0x20, 0xe9, 0x0a])
            .write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try ConfigLoader.load(path: path)
            Issue.record("accepted Latin-1 text")
        } catch {
            #expect(error.issues.map(\.message) == ["cannot read the config file: it is not UTF-8 text"])
        }
    }

    @Test("An empty file lacks the required keys")
    func emptyFile() {
        #expect(issues(in: "").map(\.field) == ["interface", "next_hop"])
        #expect(issues(in: "# only a comment\n").map(\.field) == ["interface", "next_hop"])
    }
}
