import Foundation
import Petrel
import Testing

/// A VIP as a client sees it, with the reals behind it.
struct Service: Sendable, CustomTestStringConvertible {
    let label: String
    let key: VipKey
    /// The port the client connects to (the VIP's, or any for a port-0 VIP).
    let clientPort: UInt16
    let reals: [IPAddress]

    var clientSource: IPAddress { key.address.family == .ipv4 ? Plan.client4 : Plan.client6 }
    var testDescription: String { label }

    func vip(weights: [UInt32]) -> Vip {
        Vip(key: key, reals: zip(reals, weights).map { Real(address: $0, weight: $1) })
    }

    static let tcp4 = Service(label: "TCP, IPv4 VIP, IPv4 reals (4in4)",
                              key: VipKey(address: Plan.vip4, port: 80, proto: .tcp), clientPort: 80, reals: Plan.reals4)
    static let tcp6 = Service(label: "TCP, IPv6 VIP, IPv6 reals (6in6)",
                              key: VipKey(address: Plan.vip6, port: 80, proto: .tcp), clientPort: 80, reals: Plan.reals6)
    static let tcp4in6 = Service(label: "TCP, IPv4 port-wildcard VIP, IPv6 reals (4in6)",
                                 key: VipKey(address: Plan.vip4in6, port: 0, proto: .tcp), clientPort: 80, reals: Plan.reals6)
    static let udp4 = Service(label: "UDP, IPv4 VIP port 53, IPv4 reals",
                              key: VipKey(address: Plan.vip4, port: 53, proto: .udp), clientPort: 53, reals: Plan.reals4)
}

extension EndToEnd {
    /// Real TCP and UDP through the XDP balancer in namespaces: spread by weight,
    /// agreement with `explain`, and stickiness of held connections.
    @Suite("End to end: spreading and stickiness", .serialized)
    struct BalancingTests {
        static let weights: [UInt32] = [1, 1, 2]
        static let connections = 300

        @Test("Every connection is answered, shares follow the weights, held flows keep their real",
              arguments: [Service.tcp4, Service.tcp6, Service.tcp4in6, Service.udp4])
        func spreadAndStickiness(service: Service) throws {
            try withTestNetwork(vips: [service.vip(weights: Self.weights)]) { network in
                // Fixed source ports: the same flows, hence the same shares, on every run.
                let report = try network.exchange(vip: service.key.address, port: service.clientPort, proto: service.key.proto,
                                                  count: Self.connections, firstSourcePort: 20000)
                #expect(report.answered == Self.connections, "failures: \(report.exchanges.filter { $0.real == nil }.prefix(5))")

                let total = Double(Self.weights.reduce(0, +))
                for (n, weight) in Self.weights.enumerated() {
                    let expected = Double(Self.connections) * Double(weight) / total
                    let got = Double(report.count(Plan.realNames[n]))
                    #expect(abs(got - expected) <= 0.2 * expected,
                            "\(Plan.realNames[n]) answered \(Int(got)) of \(Self.connections), expected \(Int(expected)) ± 20%")
                }
                print("[e2e] \(service.label): by real \(report.byReal.sorted { $0.key < $1.key })")

                // The data plane chose exactly what the control plane predicts.
                var disagreements: [String] = []
                for exchange in report.exchanges {
                    guard let answered = exchange.real else { continue }
                    let flow = Flow(proto: service.key.proto, source: service.clientSource, sourcePort: UInt16(exchange.sourcePort),
                                    destination: service.key.address, destinationPort: service.clientPort)
                    let predicted = try network.balancer.explain(flow).real.flatMap(Plan.name(of:))
                    if predicted != answered { disagreements.append("\(flow): explain \(predicted ?? "none"), answered \(answered)") }
                }
                #expect(disagreements.isEmpty, "\(disagreements.count) flows disagree with explain: \(disagreements.prefix(5))")

                let held = try network.finishHolding(
                    network.startHolding(vip: service.key.address, port: service.clientPort, proto: service.key.proto,
                                         connections: 30, rounds: 4, interval: 0.3))
                #expect(held.answered == 30 * 4)
                #expect(held.allSameReal && !held.anyRoundFailed && held.changedReal == 0,
                        "held flows: \(held.perConnection.filter { !$0.sameReal }.prefix(5))")
            }
        }
    }
}
