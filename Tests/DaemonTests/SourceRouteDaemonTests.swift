import Foundation
import PetrelAdmin
import Testing

/// Source routes through a running petreld: read from the config file, set and
/// refused through the admin API (by the CLI and by raw requests), listed,
/// explained, and counted when traffic takes one. Needs root.
@Suite(.serialized)
struct SourceRouteDaemonTests {
    static let routedVip = """
          - address: 198.18.100.2
            port: 80
            protocol: tcp
            reals:
              - address: 198.18.3.11
              - address: 198.18.3.12
            source_routes:
              - prefix: 10.0.0.0/8
                real: 198.18.3.12
              - prefix: 10.1.0.0/16
                real: 198.18.3.11

        """

    @Test("Routes from the file are listed and explained; the API sets, refuses and counts them")
    func throughTheDaemon() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig(extraVips: Self.routedVip)
        try harness.start()
        let vip = "tcp/198.18.100.2:80"

        let list = harness.petrel(["vip", "list"])
        #expect(list.output.contains("\(vip)\n  198.18.3.11  weight 1\n  198.18.3.12  weight 1\n  source 10.0.0.0/8 -> 198.18.3.12\n  source 10.1.0.0/16 -> 198.18.3.11\n"),
                "\(list.output)")
        let vips = try AdminJSON.decode([VipDocument].self, from: Data(harness.petrel(["vip", "list", "--json"]).output.utf8))
        #expect(vips.first { $0.address == "198.18.100.2" }?.sourceRoutes
            == [SourceRouteDocument(prefix: "10.0.0.0/8", real: "198.18.3.12"), SourceRouteDocument(prefix: "10.1.0.0/16", real: "198.18.3.11")])
        #expect(vips.first { $0.address == "198.18.100.1" }?.sourceRoutes == nil, "a VIP without routes shows none")

        // explain names the deciding prefix: the longest one containing the client.
        let explained = harness.petrel(["explain", "tcp", "10.1.2.3:40000", "198.18.100.2:80"])
        #expect(explained.output.contains("source   10.1.0.0/16 -> 198.18.3.11 (the longest prefix containing the client)"), "\(explained.output)")
        #expect(explained.output.contains("=> forwarded to 198.18.3.11"), "\(explained.output)")
        let json = try AdminJSON.decode(ExplainDocument.self,
                                        from: Data(harness.petrel(["explain", "tcp", "10.9.0.1:40000", "198.18.100.2:80", "--json"]).output.utf8))
        #expect(json.sourceRoute == ExplainSourceRouteDocument(prefix: "10.0.0.0/8", real: "198.18.3.12", inService: true))
        #expect(json.real == "198.18.3.12")

        // Refused through the CLI and raw requests, naming the field; nothing changes.
        let badReal = harness.petrel(["vip", "set", vip, "--real", "198.18.3.11", "--source-route", "10.0.0.0/8=198.18.3.12"])
        #expect(badReal.status == 1)
        #expect(badReal.output.contains("source_routes[0].real: must be one of this VIP's reals (198.18.3.11), got 198.18.3.12"), "\(badReal.output)")
        let badForm = harness.petrel(["vip", "set", vip, "--real", "198.18.3.11", "--source-route", "10.0.0.0/8"])
        #expect(badForm.status != 0 && badForm.output.contains("must be PREFIX=REAL"), "\(badForm.output)")
        let client = AdminClient(socketPath: harness.socketPath, timeoutSeconds: 10)
        func post(_ routes: String) throws -> (status: Int, error: String) {
            let body = #"{"protocol": "tcp", "address": "198.18.100.2", "port": 80, "reals": [{"address": "198.18.3.11"}], "source_routes": \#(routes)}"#
            let response = try client.send(HTTPRequest(method: "POST", path: "/v1/vips", headers: ["content-type": "application/json"], body: Data(body.utf8)))
            return (response.status, (try? AdminJSON.decode(ErrorDocument.self, from: response.body).error) ?? "")
        }
        for (routes, expected) in [
            (#"[{"prefix": "10.1.0.0/8", "real": "198.18.3.11"}]"#, "source_routes[0].prefix: must have no address bits set after its length (10.0.0.0/8?)"),
            (#"[{"prefix": "fd00::/8", "real": "198.18.3.11"}]"#, "source_routes[0].prefix: must be an IPv4 prefix like the VIP"),
            (#"[{"prefix": "10.0.0.0/8", "real": "198.18.3.11"}, {"prefix": "10.0.0.0/8", "real": "198.18.3.11"}]"#,
             "source_routes[1].prefix: must not repeat a prefix of this VIP"),
            (#"[{"prefix": "ten/8", "real": "198.18.3.11"}]"#, "source_routes[0].prefix: must be an IPv4 or IPv6 prefix in CIDR form"),
        ] {
            let (status, error) = try post(routes)
            #expect(status == 400 && error.hasPrefix(expected), "\(routes): \(status) \(error)")
        }
        let delete = harness.petrel(["real", "del", vip, "198.18.3.11"])
        #expect(delete.status == 1 && delete.output.contains("source_routes[1].real: names this real (prefix 10.1.0.0/16): remove or repoint the route first"),
                "\(delete.output)")
        #expect(harness.petrel(["vip", "list"]).output.contains("source 10.1.0.0/16 -> 198.18.3.11"), "nothing was changed")

        // vip set says what changed.
        let set = harness.petrel(["vip", "set", vip, "--real", "198.18.3.11", "--real", "198.18.3.12",
                                  "--source-route", "10.0.0.0/8=198.18.3.11", "--source-route", "192.0.2.0/24=198.18.3.12"])
        #expect(set.output == """
            VIP \(vip) updated:
              source route 10.0.0.0/8 -> 198.18.3.12 -> 198.18.3.11
              source route 192.0.2.0/24 -> 198.18.3.12 added
              source route 10.1.0.0/16 removed

            """, "\(set.output)")

        // Traffic from a routed client: the harness sends 198.18.1.2:40000 -> 198.18.100.1:53.
        let dns = harness.petrel(["vip", "set", "udp/198.18.100.1:53", "--real", "198.18.3.11", "--real", "198.18.3.12",
                                  "--source-route", "198.18.1.0/24=198.18.3.12"])
        #expect(dns.status == 0, "\(dns.output)")
        try harness.sendTraffic(count: 10)
        let stats = try AdminJSON.decode(StatsDocument.self, from: Data(harness.petrel(["stats", "--json"]).output.utf8))
        #expect(stats.global["event_source_routed"] == 1, "one new flow, decided by its prefix: \(stats.global)")
        #expect(stats.reals.first { $0.name == "198.18.3.12" }?.packets == 10)
        let metrics = try harness.inNamespaceOutput(["curl", "-s", "http://127.0.0.1:9181/metrics"])
        #expect(metrics.contains(#"petrel_events_total{event="source_routed"} 1"#), "\(metrics.prefix(2_000))")
    }
}
