import Foundation
import PetrelAdmin
import Testing

/// A running petreld refuses bad VIP and real bodies as the config file would,
/// naming the field of the body it was sent, and keeps its VIPs. Needs root.
@Suite(.serialized)
struct AdminValidationTests {
    @Test func badBodiesAreRefusedNamingTheirField() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start()
        let client = AdminClient(socketPath: harness.socketPath, timeoutSeconds: 10)
        func send(_ method: String, _ path: String, _ body: String) throws -> (status: Int, error: String) {
            let response = try client.send(HTTPRequest(method: method, path: path, headers: ["content-type": "application/json"], body: Data(body.utf8)))
            let error = (try? AdminJSON.decode(ErrorDocument.self, from: response.body).error) ?? String(decoding: response.body, as: UTF8.self)
            return (response.status, error)
        }
        let vip = #""protocol": "tcp", "port": 80"#
        let cases: [(method: String, path: String, body: String, error: String)] = [
            ("POST", "/v1/vips", #"{\#(vip), "address": "224.0.0.1"}"#, "address: must be a unicast host address, got 224.0.0.1 (multicast)"),
            ("POST", "/v1/vips", #"{\#(vip), "address": "0.0.0.0"}"#, "address: must be a unicast host address, got 0.0.0.0 (unspecified)"),
            ("POST", "/v1/vips", #"{\#(vip), "address": "255.255.255.255"}"#, "address: must be a unicast host address, got 255.255.255.255 (broadcast)"),
            ("POST", "/v1/vips", #"{\#(vip), "address": "198.18.100.9", "reals": [{"address": "198.18.3.11"}, {"address": "224.0.0.5"}]}"#,
             "reals[1].address: must be a unicast host address, got 224.0.0.5 (multicast)"),
            ("POST", "/v1/vips", #"{\#(vip), "address": "198.18.100.9", "reals": [{"address": "198.18.3.11", "wieght": 5}]}"#,
             "reals[0].wieght: is not a field of a real; expected address, weight"),
            ("POST", "/v1/vips", #"{\#(vip), "address": "198.18.100.9", "flagz": []}"#, "flagz: is not a field of a VIP"),
            ("POST", "/v1/vips", #"{"protocol": "tcp", "address": "198.18.100.9", "port": "80"}"#,
             #"port: must be an integer between 0 and 65535 (0: every port), got "80""#),
            ("POST", "/v1/vips", #"{"protocol": "tcp", "address": "198.18.100.9", "port": 123456789012}"#,
             "port: must be between 0 and 65535 (0: every port), got 123456789012"),
            ("POST", "/v1/vips", "[]", "body: must be a VIP: a JSON object with the fields protocol, address, port, flags, reals"),
            ("POST", "/v1/vips/udp/198.18.100.1/53/reals", #"{"address": "ff02::1"}"#, "address: must be a unicast host address, got ff02::1 (multicast)"),
            ("POST", "/v1/vips/udp/198.18.100.1/53/reals", #"{"address": "198.18.3.13", "wieght": 5}"#, "wieght: is not a field of a real"),
            ("PUT", "/v1/vips/udp/198.18.100.1/53/reals/198.18.3.11/weight", #"{"weight": 5000000}"#, "weight: must be between 0 and 1000000, got 5000000"),
            ("PUT", "/v1/vips/udp/198.18.100.1/53/reals/198.18.3.11/weight", #"{"weight": true}"#, "weight: must be an integer between 0 and 1000000, got true"),
        ]
        for (method, path, body, expected) in cases {
            let (status, error) = try send(method, path, body)
            #expect(status == 400, "\(method) \(path) \(body): \(status) \(error)")
            #expect(error.hasPrefix(expected), "\(method) \(path) \(body): \(error)")
        }
        let list = harness.petrel(["vip", "list"]).output
        #expect(!list.contains("224.0.0.1") && !list.contains("198.18.100.9"), "nothing was added: \(list)")
        #expect(list.contains("198.18.3.11  weight 1"), "nothing was changed: \(list)")

        // A good body still works, and so does what the CLI sends.
        let added = try send("POST", "/v1/vips", #"{\#(vip), "address": "198.18.100.9", "flags": ["lru_bypass"], "reals": [{"address": "198.18.3.11", "weight": 2}]}"#)
        #expect(added.status == 201, "\(added.error)")
        #expect(harness.petrel(["vip", "add", "tcp/198.18.100.10:80", "--real", "198.18.3.12=3"]).status == 0)
        #expect(harness.petrel(["vip", "list"]).output.contains("tcp/198.18.100.10:80"))
    }
}
