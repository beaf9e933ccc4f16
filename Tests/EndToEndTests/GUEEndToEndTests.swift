import Foundation
import Petrel
import Testing

extension EndToEnd {
    /// Real TCP and UDP through GUE in the demo network: the balancer wraps the
    /// client's packets in UDP to the reals' GUE port, the reals' decapsulators
    /// unwrap them, and the reals answer the client directly.
    @Suite("End to end: GUE encapsulation", .serialized)
    struct GUEEndToEndTests {
        static let connections = 150

        static func gue(_ service: Service) -> Vip {
            Vip(key: service.key, reals: service.reals.map { Real(address: $0, encapsulation: .gue) })
        }

        @Test("TCP and UDP through GUE, every family: all answered, every real used, counters agree",
              arguments: [Service.tcp4, Service.tcp6, Service.tcp4in6, Service.udp4])
        func throughGUE(service: Service) throws {
            try withTestNetwork(vips: [Self.gue(service)]) { network in
                let report = try network.exchange(vip: service.key.address, port: service.clientPort, proto: service.key.proto,
                                                  count: Self.connections, firstSourcePort: 21000)
                #expect(report.answered == Self.connections, "failures: \(report.exchanges.filter { $0.real == nil }.prefix(5))")
                #expect(Set(report.byReal.keys) == Set(Plan.realNames), "every real answers: \(report.byReal)")
                for exchange in report.exchanges {
                    guard let answered = exchange.real else { continue }
                    let flow = Flow(proto: service.key.proto, source: service.clientSource, sourcePort: UInt16(exchange.sourcePort),
                                    destination: service.key.address, destinationPort: service.clientPort)
                    let explanation = try network.balancer.explain(flow)
                    #expect(explanation.encapsulation == .gue)
                    #expect(explanation.real.flatMap(Plan.name(of:)) == answered)
                }

                let stats = try network.balancer.stats()
                #expect(stats[.forward] > 0 && stats[.eventGUEForward] == stats[.forward], "every forwarded packet went in GUE")
                let decapsulated = try network.decapsulators.reduce(UInt64(0)) { $0 + (try $1.stats()[.decapsulatedGUE] ?? 0) }
                let ipip = try network.decapsulators.reduce(UInt64(0)) { $0 + (try $1.stats()[.decapsulated] ?? 0) }
                #expect(decapsulated == stats[.forward], "the reals unwrapped every GUE packet the balancer sent")
                #expect(ipip == 0)
                print("[e2e] GUE \(service.label): by real \(report.byReal.sorted { $0.key < $1.key }), "
                      + "\(stats[.forward]) packets forwarded in GUE, \(decapsulated) unwrapped")
            }
        }

        @Test("A malformed GUE packet at a real is dropped and counted, never delivered")
        func malformedAtReal() throws {
            try withTestNetwork(vips: [Self.gue(Service.udp4)]) { network in
                let real = "\(network.prefix)-real1"
                func udpIn() throws -> UInt64 {
                    let text = try Command.inNamespace(real, ["cat", "/proc/net/snmp"])
                    let lines = text.split(separator: "\n").filter { $0.hasPrefix("Udp:") }
                    let names = lines[0].split(separator: " "), values = lines[1].split(separator: " ")
                    // Whatever reaches UDP: delivered, to no listener, or in error.
                    return ["InDatagrams", "NoPorts", "InErrors"].reduce(0) { sum, name in
                        sum + (UInt64(values[names.firstIndex(of: Substring(name))!]) ?? 0)
                    }
                }
                let before = try udpIn()
                // From the client straight to real1's GUE port: a GUE variant 0 header, a
                // bad first nibble, and an inner IPv4 header whose length lies.
                let script = """
                    import socket
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    inner = bytes([0x45, 0, 0, 200]) + bytes(16)
                    for payload in (bytes(4) + inner, b'\\x50' + bytes(30), inner):
                        s.sendto(payload, ('\(Plan.reals4[0])', \(ForwardingSettings.defaultGUEPort)))
                    """
                try Command.inNamespace(network.clientNamespace, ["python3", "-c", script])
                var dropped: UInt64 = 0
                let deadline = Date().addingTimeInterval(5)
                while dropped < 3 && Date() < deadline {
                    dropped = try network.decapsulators[0].stats()[.dropGUEMalformed] ?? 0
                    usleep(50_000)
                }
                #expect(dropped == 3)
                #expect(try network.decapsulators[0].stats()[.decapsulatedGUE] == 0)
                #expect(try udpIn() == before, "the real's UDP stack never saw them")
            }
        }
    }
}
