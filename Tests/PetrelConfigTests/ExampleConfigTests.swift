import Foundation
import Petrel
import PetrelConfig
import Testing
import PetrelTestSupport

@Suite("Example configs")
struct ExampleConfigTests {
    private func load(_ name: String) throws -> PetrelConfiguration {
        let path = configDirectory.appendingPathComponent(name).path
        do {
            return try ConfigLoader.load(path: path)
        } catch {
            Issue.record("\(name) was rejected:\n\(error)")
            throw error
        }
    }

    private func reals(_ addresses: [String], weights: [UInt32]? = nil) -> [Real] {
        addresses.enumerated().map { Real(address: IPAddress($0.element)!, weight: weights?[$0.offset] ?? 1) }
    }

    @Test("demo.yaml holds exactly the demo network's settings")
    func demo() throws {
        let config = try load("demo.yaml")
        #expect(config.interface == "eth0")
        #expect(config.attachMode == .native)
        #expect(config.nextHop == .mac(MACAddress(0x02, 0x00, 0x00, 0x00, 0x02, 0x01)))
        #expect(config.ringSize == 65_537)
        #expect(config.mtu == nil)
        #expect(config.pinPath == "/sys/fs/bpf/petrel-demo")
        #expect(config.adminSocket == "/run/petrel/demo.sock")
        #expect(config.adminTCP == nil)
        #expect(config.metricsListen == .init(host: "127.0.0.1", port: 9181))

        let v4Reals = ["198.18.3.11", "198.18.3.12", "198.18.3.13"]
        let v6Reals = ["fd50:0:3::11", "fd50:0:3::12", "fd50:0:3::13"]
        let expected = [
            Vip(key: VipKey(address: IPAddress("198.18.100.1")!, port: 80, proto: .tcp),
                reals: reals(v4Reals, weights: [1, 1, 2])),
            Vip(key: VipKey(address: IPAddress("198.18.100.1")!, port: 53, proto: .udp), reals: reals(v4Reals)),
            Vip(key: VipKey(address: IPAddress("fd50:0:100::1")!, port: 80, proto: .tcp), reals: reals(v6Reals)),
            Vip(key: VipKey(address: IPAddress("198.18.100.2")!, port: 0, proto: .tcp), reals: reals(v6Reals)),
        ]
        #expect(config.vips == expected)
    }

    @Test("large-example.yaml parses, with its drained real, flags, gateway, source routes and 4in6 VIP")
    func largeExample() throws {
        let config = try load("large-example.yaml")
        #expect(config.nextHop == .gateway(IPAddress("10.20.0.1")!))
        #expect(config.encapSourceV4 == IPAddress("10.250.0.0"))
        #expect(config.encapSourceV6 == IPAddress("2001:db8:fa::"))
        #expect(config.ringSize == 131_071)
        #expect(config.maxVips * config.ringSize <= PetrelConfiguration.Limits.totalRingSlots)
        #expect(config.mtu == 9000)
        #expect(config.adminTCP == .init(host: "127.0.0.1", port: 9180))
        #expect(config.metricsListen == .init(host: "::1", port: 9181))
        #expect(config.vips.count == 8)
        #expect(config.vips[0].reals.last?.weight == 0, "web-06 is drained")
        #expect(config.vips[1].reals.allSatisfy { $0.weight == 1 }, "weight defaults to 1")
        #expect(config.vips[2].sourceRoutes.map(\.prefix) == [IPPrefix("2001:db8:5000::/36")!, IPPrefix("2001:db8:5000:1::/64")!])
        #expect(config.vips[2].sourceRoute(for: IPAddress("2001:db8:5000:1::7")!)?.real == IPAddress("2001:db8:1::12"), "the longest prefix wins")
        #expect(config.vips[3].flags == .lruBypass)
        #expect(config.vips[5].flags == .hashWithoutSourcePort)
        #expect(config.vips[6].flags == [.hashDestinationPortOnly, .lruBypass])
        let fourInSix = config.vips[7]
        #expect(fourInSix.key.address.family == .ipv4 && fourInSix.key.port == 0)
        #expect(fourInSix.reals.allSatisfy { $0.address.family == .ipv6 })
    }

    @Test("Each example survives rendering and parsing again", arguments: ["demo.yaml", "large-example.yaml"])
    func roundTrip(_ name: String) throws {
        let config = try load(name)
        let again = try ConfigLoader.parse(yaml: config.yaml, fileName: "rendered-\(name)")
        #expect(again == config)
    }

    /// The README shows a bad file and the loader's output for it; they must stay true.
    @Test("The example error output in config/README.md is what the loader prints")
    func readmeExampleOutput() throws {
        let readme = try String(contentsOf: configDirectory.appendingPathComponent("README.md"), encoding: .utf8)
        let yaml = try #require(fencedBlock(after: "<!-- example: bad.yaml -->", in: readme))
        let output = try #require(fencedBlock(after: "<!-- example: output -->", in: readme))
        do {
            _ = try ConfigLoader.parse(yaml: yaml, fileName: "bad.yaml")
            Issue.record("the README's bad.yaml was accepted")
        } catch {
            #expect(error.description == output.trimmingCharacters(in: .newlines))
        }
    }

    private func fencedBlock(after marker: String, in text: String) -> String? {
        guard let markerRange = text.range(of: marker),
              let open = text.range(of: "```", range: markerRange.upperBound..<text.endIndex),
              let bodyStart = text.range(of: "\n", range: open.upperBound..<text.endIndex),
              let close = text.range(of: "\n```", range: bodyStart.upperBound..<text.endIndex)
        else { return nil }
        return String(text[bodyStart.upperBound..<close.lowerBound]) + "\n"
    }
}
