import Foundation
@testable import Petrel
import PetrelAdmin
import PetrelConfig
import Testing
import PetrelTestSupport

// One table of bad VIPs, refused by the config file, the admin API and the
// library alike, each naming the field its own way.

/// A VIP with one mistake, written once and rendered for each front end.
struct BadVip: Sendable, CustomTestStringConvertible {
    let name: String
    var address = "198.18.100.1"
    var reals: [(address: String, weight: Int?)] = []
    var routes: [(prefix: String, real: String)] = []
    /// The field, relative to the VIP (`reals[0].address`).
    let field: String
    /// Text the message must contain.
    let message: String

    var testDescription: String { name }

    /// The VIP as a single `vips:` entry of a config file; ring_size 3 so a VIP may have at most 2 reals.
    var yaml: String {
        var text = "ring_size: 3\nvips:\n  - address: \"\(address)\"\n    port: 80\n    protocol: tcp\n"
        if !reals.isEmpty { text += "    reals:\n" }
        for real in reals {
            text += "      - address: \"\(real.address)\"\n"
            if let weight = real.weight { text += "        weight: \(weight)\n" }
        }
        if !routes.isEmpty { text += "    source_routes:\n" }
        for route in routes { text += "      - prefix: \"\(route.prefix)\"\n        real: \"\(route.real)\"\n" }
        return text
    }

    /// The VIP as the body of `POST /v1/vips`.
    var json: Data {
        let reals = self.reals.map { real in
            "{\"address\": \"\(real.address)\"" + (real.weight.map { ", \"weight\": \($0)" } ?? "") + "}"
        }
        let routes = self.routes.map { "{\"prefix\": \"\($0.prefix)\", \"real\": \"\($0.real)\"}" }
        return Data(("{\"protocol\": \"tcp\", \"address\": \"\(address)\", \"port\": 80, \"reals\": [\(reals.joined(separator: ", "))]"
            + (routes.isEmpty ? "" : ", \"source_routes\": [\(routes.joined(separator: ", "))]") + "}").utf8)
    }

    /// The VIP as a library value.
    var model: Vip {
        Vip(key: VipKey(address: IPAddress(address)!, port: 80, proto: .tcp),
            reals: reals.map { Real(address: IPAddress($0.address)!, weight: UInt32($0.weight ?? 1)) },
            sourceRoutes: routes.map { SourceRoute(prefix: IPPrefix($0.prefix)!, real: IPAddress($0.real)!) })
    }
}

let ringSize = 3
let goodReal = (address: "198.18.3.11", weight: Int?.none)

let badVips: [BadVip] = [
    BadVip(name: "VIP multicast", address: "224.0.0.1", field: "address", message: "must be a unicast host address, got 224.0.0.1 (multicast)"),
    BadVip(name: "VIP unspecified", address: "0.0.0.0", field: "address", message: "got 0.0.0.0 (unspecified)"),
    BadVip(name: "VIP broadcast", address: "255.255.255.255", field: "address", message: "got 255.255.255.255 (broadcast)"),
    BadVip(name: "VIP reserved", address: "250.1.2.3", field: "address", message: "got 250.1.2.3 (reserved)"),
    BadVip(name: "VIP loopback", address: "127.0.0.1", field: "address", message: "got 127.0.0.1 (loopback)"),
    BadVip(name: "VIP IPv6 multicast", address: "ff02::1", field: "address", message: "got ff02::1 (multicast)"),
    BadVip(name: "VIP IPv6 unspecified", address: "::", field: "address", message: "got :: (unspecified)"),
    BadVip(name: "VIP IPv6 loopback", address: "::1", field: "address", message: "got ::1 (loopback)"),
    BadVip(name: "real multicast", reals: [("224.0.0.5", nil)], field: "reals[0].address", message: "got 224.0.0.5 (multicast)"),
    BadVip(name: "real broadcast", reals: [goodReal, ("255.255.255.255", nil)], field: "reals[1].address", message: "(broadcast)"),
    BadVip(name: "real unspecified", address: "fd50:0:100::1", reals: [("::", nil)], field: "reals[0].address", message: "got :: (unspecified)"),
    BadVip(name: "real loopback", reals: [("127.0.0.2", nil)], field: "reals[0].address", message: "got 127.0.0.2 (loopback)"),
    BadVip(name: "IPv4 real behind an IPv6 VIP", address: "fd50:0:100::1", reals: [("198.18.3.11", nil)],
           field: "reals[0].address", message: "must be IPv6 for the IPv6 VIP fd50:0:100::1"),
    BadVip(name: "weight too large", reals: [goodReal, ("198.18.3.12", 2_000_000)], field: "reals[1].weight",
           message: "must be between 0 and 1000000, got 2000000"),
    BadVip(name: "real listed twice", reals: [goodReal, goodReal], field: "reals[1].address",
           message: "must not repeat a real of this VIP (it is reals[0] too)"),
    BadVip(name: "as many reals as ring slots", reals: [goodReal, ("198.18.3.12", nil), ("198.18.3.13", nil)], field: "reals",
           message: "must be fewer than ring_size (3) reals, got 3 reals"),
    BadVip(name: "source route to a real not of the VIP", reals: [goodReal], routes: [("10.0.0.0/8", "198.18.3.12")],
           field: "source_routes[0].real", message: "must be one of this VIP's reals (198.18.3.11), got 198.18.3.12"),
    BadVip(name: "source route with host bits set", reals: [goodReal], routes: [("10.1.0.0/8", "198.18.3.11")],
           field: "source_routes[0].prefix", message: "must have no address bits set after its length (10.0.0.0/8?), got 10.1.0.0/8"),
    BadVip(name: "IPv6 source prefix on an IPv4 VIP", reals: [goodReal], routes: [("fd00::/8", "198.18.3.11")],
           field: "source_routes[0].prefix", message: "must be an IPv4 prefix like the VIP 198.18.100.1"),
    BadVip(name: "source prefix listed twice", reals: [goodReal, ("198.18.3.12", nil)],
           routes: [("10.0.0.0/8", "198.18.3.11"), ("10.0.0.0/8", "198.18.3.12")],
           field: "source_routes[1].prefix", message: "must not repeat a prefix of this VIP (it is source_routes[0] too)"),
    BadVip(name: "source prefix longer than 32 bits", reals: [goodReal], routes: [("10.0.0.0/33", "198.18.3.11")],
           field: "source_routes[0].prefix", message: "must have a length between 0 and 32, got 10.0.0.0/33"),
]

/// A PetrelError's field and text, whatever its case.
func fieldAndText(_ error: PetrelError) -> (field: String, text: String) {
    if case .invalid(let field, _, _) = error { return (field, "\(error)") }
    return ("", "\(error)")
}

@Suite("One set of rules for the file, the API and the library")
struct SameRulesTests {
    @Test("The config file refuses the VIP at vips[0].<field>", arguments: badVips)
    func file(_ bad: BadVip) {
        let yaml = "interface: eth0\nnext_hop:\n  mac: \"02:00:00:00:02:01\"\n" + bad.yaml
        do {
            _ = try ConfigLoader.parse(yaml: yaml, fileName: "bad.yaml")
            Issue.record("accepted")
        } catch {
            #expect(error.issues.count == 1, "\(error)")
            #expect(error.issues.first?.field == "vips[0].\(bad.field)")
            #expect(error.issues.first?.message.contains(bad.message) == true, "\(error)")
            #expect((error.issues.first?.line ?? 0) >= 5)
        }
    }

    @Test("The admin API refuses the POSTed VIP naming <field> in the body", arguments: badVips)
    func api(_ bad: BadVip) {
        #expect(throws: PetrelError.self) { _ = try RequestBody.vip(bad.json, ringSize: ringSize) }
        do {
            _ = try RequestBody.vip(bad.json, ringSize: ringSize)
        } catch {
            let (field, text) = fieldAndText(error)
            #expect(field == bad.field)
            #expect(text.contains(bad.message), "\(text)")
        }
    }

    @Test("LoadBalancer's apply refuses the VIP at vips[1].<field> before planning a write", arguments: badVips)
    func library(_ bad: BadVip) {
        let limits = DataPlaneLimits(ringSize: ringSize)
        let good = Vip(key: VipKey(address: IPAddress("198.18.100.2")!, port: 80, proto: .tcp), reals: [Real(address: IPAddress("198.18.3.11")!)])
        do {
            _ = try ApplyPlan(desired: [good, bad.model], current: AppliedState(limits: limits), limits: limits)
            Issue.record("accepted")
        } catch {
            let (field, text) = fieldAndText(error)
            #expect(field == "vips[1].\(bad.field)")
            #expect(text.contains(bad.message), "\(text)")
        }
        // A single VIP names its own fields, as the API does.
        #expect(bad.model.validate(ringSize: ringSize).first.map { "\($0.path)" } == bad.field)
    }

    @Test("The good VIPs of the same shape are accepted by all three")
    func goodOnesPass() throws {
        // Overlapping prefixes are fine: the longest wins.
        let good = BadVip(name: "good", address: "fd50:0:100::1", reals: [("fd50:0:3::11", 0), ("fd50:0:3::12", 1_000_000)],
                          routes: [("fd00::/8", "fd50:0:3::11"), ("fd00:1::/32", "fd50:0:3::12")], field: "", message: "")
        _ = try ConfigLoader.parse(yaml: "interface: eth0\nnext_hop:\n  mac: \"02:00:00:00:02:01\"\n" + good.yaml)
        #expect(try RequestBody.vip(good.json, ringSize: ringSize) == good.model)
        let limits = DataPlaneLimits(ringSize: ringSize)
        _ = try ApplyPlan(desired: [good.model], current: AppliedState(limits: limits), limits: limits)
    }
}

/// What only text formats can get wrong: unknown fields and wrong types.
@Suite("Unknown fields and wrong types")
struct FieldTypeTests {
    /// Bodies of `POST /v1/vips` and the field and text their refusal must carry.
    static let vipBodies: [(body: String, field: String, message: String)] = [
        (#"{"protocol": "tcp", "address": "198.18.100.1", "port": 80, "reals": [{"address": "198.18.3.11", "wieght": 5}]}"#,
         "reals[0].wieght", "is not a field of a real; expected address, weight"),
        (#"{"protocol": "tcp", "address": "198.18.100.1", "port": 80, "flagz": ["lru_bypass"]}"#,
         "flagz", "is not a field of a VIP"),
        (#"{"protocol": "tcp", "address": "198.18.100.1", "port": "80"}"#,
         "port", #"must be an integer between 0 and 65535 (0: every port), got "80""#),
        (#"{"protocol": "tcp", "address": "198.18.100.1", "port": 70000}"#,
         "port", "must be between 0 and 65535 (0: every port), got 70000"),
        (#"{"protocol": "tcp", "address": "198.18.100.1", "port": 8.5}"#,
         "port", "must be an integer between 0 and 65535"),
        (#"{"protocol": "tcp", "address": "198.18.100.1", "port": 80, "reals": [{"address": "198.18.3.11", "weight": 99999999999999999999}]}"#,
         "reals[0].weight", "must be between 0 and 1000000"),
        (#"{"protocol": "tcp", "address": "198.18.100.1", "port": 80, "reals": [{"address": "198.18.3.11", "weight": -1}]}"#,
         "reals[0].weight", "must be between 0 and 1000000, got -1"),
        (#"{"protocol": "sctp", "address": "198.18.100.1", "port": 80}"#, "protocol", #"must be one of tcp, udp, got "sctp""#),
        (#"{"protocol": "tcp", "address": 5, "port": 80}"#, "address", "must be an IPv4 or IPv6 address, got 5"),
        (#"{"protocol": "tcp", "port": 80}"#, "address", "is required"),
        (#"{"protocol": "tcp", "address": "198.18.100.1", "port": 80, "flags": ["sticky"]}"#, "flags[0]", "must be one of hash_without_source_port"),
        (#"{"protocol": "tcp", "address": "198.18.100.1", "port": 80, "reals": {"address": "198.18.3.11"}}"#, "reals", "must be a list"),
        (#"{"protocol": "tcp", "address": "198.18.100.1", "port": 80, "source_routes": [{"prefix": "10.0.0.0", "real": "198.18.3.11"}]}"#,
         "source_routes[0].prefix", #"must be an IPv4 or IPv6 prefix in CIDR form (address/length, like 10.0.0.0/8), got "10.0.0.0""#),
        (#"{"protocol": "tcp", "address": "198.18.100.1", "port": 80, "source_routes": [{"prefix": "10.0.0.0/8", "reel": "198.18.3.11"}]}"#,
         "source_routes[0].reel", "is not a field of a source route; expected prefix, real"),
        (#"{"protocol": "tcp", "address": "198.18.100.1", "port": 80, "source_routes": [{"prefix": "10.0.0.0/8"}]}"#,
         "source_routes[0].real", "is required"),
        (#"{"protocol": "tcp", "address": "198.18.100.1", "port": 80, "source_routes": {"prefix": "10.0.0.0/8"}}"#,
         "source_routes", "must be a list"),
        (#"[1, 2]"#, "body", "must be a VIP: a JSON object with the fields protocol, address, port, flags, reals"),
        (#"{"protocol": "tcp", "#, "body", "must be a JSON document"),
    ]

    @Test("POST /v1/vips: each body is refused naming its field, in words without Swift types")
    func vipBodiesRefused() {
        for (body, field, message) in Self.vipBodies {
            do {
                let vip = try RequestBody.vip(Data(body.utf8), ringSize: ringSize)
                Issue.record("accepted \(body) as \(vip)")
            } catch {
                let (found, text) = fieldAndText(error)
                #expect(found == field, "\(body): \(text)")
                #expect(text.contains(message), "\(body): \(text)")
                for swiftWord in ["Int", "Dictionary", "String", "Array", "Double", "Swift"] {
                    #expect(!text.contains(swiftWord), "\(body): \(text)")
                }
            }
        }
    }

    @Test("POST .../reals and PUT .../weight name their own fields")
    func realAndWeightBodies() throws {
        let vip = IPAddress("fd50:0:100::1")!
        let cases: [(() throws(PetrelError) -> Void, String, String)] = [
            ({ () throws(PetrelError) in _ = try RequestBody.real(Data(#"{"address": "fd50::3", "wieght": 5}"#.utf8), vipAddress: vip) },
             "wieght", "is not a field of a real"),
            ({ () throws(PetrelError) in _ = try RequestBody.real(Data(#"{"address": "198.18.3.11"}"#.utf8), vipAddress: vip) },
             "address", "must be IPv6 for the IPv6 VIP"),
            ({ () throws(PetrelError) in _ = try RequestBody.real(Data(#"{"address": "ff02::2"}"#.utf8), vipAddress: vip) },
             "address", "(multicast)"),
            ({ () throws(PetrelError) in _ = try RequestBody.weight(Data(#"{"weight": 5000000}"#.utf8)) },
             "weight", "must be between 0 and 1000000, got 5000000"),
            ({ () throws(PetrelError) in _ = try RequestBody.weight(Data(#"{"weight": "3"}"#.utf8)) },
             "weight", "must be an integer between 0 and 1000000"),
            ({ () throws(PetrelError) in _ = try RequestBody.weight(Data(#"{"wieght": 3}"#.utf8)) },
             "wieght", "is not a field of a weight"),
        ]
        for (call, field, message) in cases {
            do {
                try call()
                Issue.record("accepted; expected \(field): \(message)")
            } catch {
                let (found, text) = fieldAndText(error)
                #expect(found == field, "\(text)")
                #expect(text.contains(message), "\(text)")
            }
        }
        #expect(try RequestBody.weight(Data(#"{"weight": 0}"#.utf8)) == 0)
        #expect(try RequestBody.real(Data(#"{"address": "fd50::3"}"#.utf8), vipAddress: vip) == Real(address: IPAddress("fd50::3")!, weight: 1))
    }

    @Test("The config file refuses the same unknown fields by name")
    func fileUnknownFields() {
        let yaml = """
            interface: eth0
            next_hop:
              mac: "02:00:00:00:02:01"
            vips:
              - address: 198.18.100.1
                port: 80
                protocol: tcp
                flagz: [lru_bypass]
                reals:
                  - address: 198.18.3.11
                    wieght: 5
            """
        do {
            _ = try ConfigLoader.parse(yaml: yaml)
            Issue.record("accepted")
        } catch {
            #expect(error.issues.map(\.field) == ["vips[0].flagz", "vips[0].reals[0].wieght"])
        }
    }

    @Test("The config file names a source route that is not a prefix, or has an unknown field")
    func fileSourceRouteFields() {
        let yaml = """
            interface: eth0
            next_hop:
              mac: "02:00:00:00:02:01"
            vips:
              - address: 198.18.100.1
                port: 80
                protocol: tcp
                reals:
                  - address: 198.18.3.11
                source_routes:
                  - prefix: 10.0.0.0
                    real: 198.18.3.11
                  - prefix: 10.0.0.0/8
                    reel: 198.18.3.11
            """
        do {
            _ = try ConfigLoader.parse(yaml: yaml)
            Issue.record("accepted")
        } catch {
            #expect(error.issues.map(\.field) == ["vips[0].source_routes[0].prefix", "vips[0].source_routes[1].real", "vips[0].source_routes[1].reel"],
                    "\(error)")
            #expect(error.issues.first?.message.contains("must be an IPv4 or IPv6 prefix in CIDR form") == true)
        }
    }
}

/// The settings other than VIPs: the file and the library share each rule too.
@Suite("Forwarding settings and limits: one rule each")
struct SettingsRulesTests {
    @Test("An outer source prefix with host bits, or of the wrong family, is refused by the file and the library alike")
    func encapsulationPrefixes() {
        let cases: [(v4: String, v6: String, field: String, message: String)] = [
            ("198.19.1.0", "fd50:0:ffff::", "encapsulation.source_v4", "must be a /16 prefix with the low 16 bits zero (they are filled in from each flow), got 198.19.1.0; did you mean 198.19.0.0?"),
            ("198.19.0.0", "fd50:0:ffff::1", "encapsulation.source_v6", "must be a /64 prefix with the low 64 bits zero"),
            ("fd50::", "fd50:0:ffff::", "encapsulation.source_v4", "must be an IPv4 address, got fd50::, which is IPv6"),
        ]
        for (v4, v6, field, message) in cases {
            let yaml = "interface: eth0\nnext_hop:\n  mac: \"02:00:00:00:02:01\"\nencapsulation:\n  source_v4: \"\(v4)\"\n  source_v6: \"\(v6)\"\n"
            do {
                _ = try ConfigLoader.parse(yaml: yaml)
                Issue.record("the file accepted \(v4) \(v6)")
            } catch {
                #expect(error.issues.map(\.field) == [field])
                #expect(error.issues.first?.message.contains(message) == true, "\(error)")
            }
            let settings = ForwardingSettings(interfaceMAC: MACAddress(2, 0, 0, 0, 2, 2), nextHopMAC: MACAddress(2, 0, 0, 0, 2, 1), mtu: 1500,
                                              encapSourceV4: IPAddress(v4)!, encapSourceV6: IPAddress(v6)!)
            #expect { try settings.validate() } throws: { error in
                let (found, text) = fieldAndText(error as! PetrelError)
                return found == field && text.contains(message)
            }
        }
    }

    @Test("Limits out of range name their setting with the file's words")
    func limits() {
        for (limits, field, message) in [
            (DataPlaneLimits(maxVips: 0), "max_vips", "must be between 1 and 65536, got 0"),
            (DataPlaneLimits(maxReals: 1), "max_reals", "must be between 2 and 1048576, got 1"),
            (DataPlaneLimits(connectionTableSize: 0), "connection_table_size", "must be between 1 and 16777216, got 0"),
        ] {
            #expect { try limits.validate() } throws: { error in
                let (found, text) = fieldAndText(error as! PetrelError)
                return found == field && text.contains(message)
            }
        }
    }
}
