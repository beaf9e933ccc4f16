import Foundation
import Petrel
import Testing

extension EndToEnd {
    /// A real QUIC stack (aioquic) on both ends, through the XDP balancer: the reals'
    /// servers put their server id in every connection ID they issue; the client
    /// transfers, migrates each connection to a new source port (a new socket and a
    /// new connection ID) and transfers again. With the `quic` flag Petrel routes
    /// the migrated packets by connection ID and every connection survives; without
    /// it, the 5-tuple sends them to whichever real the ring says, and the
    /// connections whose new 5-tuple lands elsewhere break.
    @Suite("End to end: QUIC connection migration", .serialized)
    struct QUICMigrationTests {
        static let vip = VipKey(address: Plan.vip4, port: 443, proto: .udp)
        static let serverIds: [UInt16] = [11, 12, 13]

        static func vip(quic: Bool) -> Vip {
            Vip(key: vip, flags: quic ? .quic : [],
                reals: zip(Plan.reals4, serverIds).map { Real(address: $0, quicServerId: quic ? $1 : nil) })
        }

        struct Report: Decodable {
            struct Answer: Decodable { let real: String; let serverId: Int; let intact: Bool }
            struct Record: Decodable {
                let index: Int
                let ok: Bool
                let error: String?
                let portBefore: Int?
                let portAfter: Int?
                let serverIdBefore: Int?
                let serverIdAfter: Int?
                let before: [Answer]?
                let after: [Answer]?
            }
            let connections: Int
            let ok: Int
            let records: [Record]
        }

        /// Starts a QUIC server on every real, runs the client, stops the servers.
        func run(_ network: TestNetwork, connections: Int, timeout: Int) throws -> Report {
            var servers: [Command.Running] = []
            defer { for server in servers { server.stop() } }
            var readyFiles: [String] = []
            for (n, name) in Plan.realNames.enumerated() {
                let ready = "/tmp/\(network.prefix)-quic-\(name).ready"
                unlink(ready)
                readyFiles.append(ready)
                servers.append(try Command.Running([
                    "ip", "netns", "exec", "\(network.prefix)-real\(n + 1)", "python3", Command.script("quic_host.py"), "serve",
                    "--listen", "\(Self.vip.address)", "--port", "\(Self.vip.port)", "--server-id", "\(Self.serverIds[n])",
                    "--name", name, "--ready-file", ready,
                ]))
            }
            defer { for file in readyFiles { unlink(file) } }
            let deadline = Date().addingTimeInterval(15)
            while !readyFiles.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) {
                guard Date() < deadline else { throw Command.Failure(command: ["quic_host.py", "serve"], status: -1, output: "not listening after 15 s") }
                usleep(50_000)
            }
            let client = try Command.Running([
                "ip", "netns", "exec", network.clientNamespace, "python3", Command.script("quic_host.py"), "client",
                "--vip", "\(Self.vip.address)", "--port", "\(Self.vip.port)", "--connections", "\(connections)",
                "--parallel", "\(connections)", "--rounds", "2", "--bytes", "20000", "--timeout", "\(timeout)",
            ])
            let result = try client.wait(timeout: TimeInterval(timeout * 2 + 30))
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode(Report.self, from: Data(result.output.utf8))
        }

        /// The real the 5-tuple alone picks for a connection's packets after it moved.
        func ringReal(_ network: TestNetwork, port: Int) throws -> String? {
            let flow = Flow(proto: .udp, source: Plan.client4, sourcePort: UInt16(port), destination: Self.vip.address,
                            destinationPort: Self.vip.port)
            return try network.balancer.explain(flow).ringReal.flatMap(Plan.name(of:))
        }

        @Test("With the quic flag every migrated connection survives, routed by its connection ID")
        func survivesMigration() throws {
            try withTestNetwork(vips: [Self.vip(quic: true)]) { network in
                let connections = 40
                let report = try run(network, connections: connections, timeout: 20)
                #expect(report.ok == connections, "broken: \(report.records.filter { !$0.ok }.prefix(3).map { "\($0.index): \($0.error ?? "another real")" })")

                var movedByFiveTuple = 0
                for record in report.records where record.ok {
                    let served = try #require(record.before?.first?.real)
                    let id = Self.serverIds[Plan.realNames.firstIndex(of: served)!]
                    // The connection IDs in use before and after carry the id of the real that served.
                    #expect(record.serverIdBefore == Int(id) && record.serverIdAfter == Int(id))
                    #expect(record.portBefore != record.portAfter, "the client really moved")
                    #expect((record.before! + record.after!).allSatisfy { $0.real == served && $0.intact })
                    if try ringReal(network, port: record.portAfter!) != served { movedByFiveTuple += 1 }
                }
                let stats = try network.balancer.stats()
                #expect(stats[.eventQuicCIDRouted] > 0 && stats[.eventQuicLongHeader] > 0)
                #expect(stats[.eventQuicCIDUnknown] == 0 && stats[.eventQuicCIDMalformed] == 0)
                // The ring gives each new port a real at random: about 2 in 3 land elsewhere.
                #expect(movedByFiveTuple >= connections / 4,
                        "the 5-tuple alone would have moved \(movedByFiveTuple) of \(connections)")
                print("[e2e] QUIC migration with CID routing: \(report.ok)/\(connections) connections survived; "
                      + "the 5-tuple alone would have sent \(movedByFiveTuple) of them to another real; "
                      + "counters: cid_routed \(stats[.eventQuicCIDRouted]), long_header \(stats[.eventQuicLongHeader])")
            }
        }

        @Test("Without the quic flag the connections whose new 5-tuple lands on another real break")
        func breaksWithoutCIDRouting() throws {
            try withTestNetwork(vips: [Self.vip(quic: false)]) { network in
                let connections = 20
                let report = try run(network, connections: connections, timeout: 6)
                var predictedBroken = 0, broken = 0
                for record in report.records {
                    guard let served = record.before?.first?.real, let portAfter = record.portAfter else {
                        Issue.record("connection \(record.index) failed before migrating: \(record.error ?? "?")")
                        continue
                    }
                    let elsewhere = try ringReal(network, port: portAfter) != served
                    if elsewhere { predictedBroken += 1 }
                    if !record.ok { broken += 1 }
                    #expect(record.ok == !elsewhere, "connection \(record.index): survived \(record.ok), 5-tuple moved it \(elsewhere)")
                }
                #expect(broken > 0, "some connections must move with 20 new ports")
                #expect(broken == predictedBroken)
                print("[e2e] QUIC migration without CID routing: \(broken)/\(connections) connections broke "
                      + "(\(predictedBroken) predicted from the 5-tuple)")
            }
        }
    }
}
