import Foundation
import Petrel
import Testing

extension EndToEnd {
    /// Petrel's counters against what the client and the LB's interface counted,
    /// and direct server return shown by them: replies never reach the LB.
    @Suite("End to end: counters and direct server return", .serialized)
    struct CounterTests {
        static let connections = 200

        @Test("Per-VIP and per-real packets match the client's traffic; the LB sees only client-to-VIP packets",
              arguments: [Service.tcp4, Service.tcp6, Service.udp4])
        func countersMatchTraffic(service: Service) throws {
            // real3 is drained: it answers nothing, so it must count nothing.
            try withTestNetwork(vips: [service.vip(weights: [1, 2, 0])]) { network in
                let before = try network.balancer.stats()
                let lbRxBefore = try network.lbInterfaceCounter("rx_packets")
                let outBefore = try network.clientSent(service.key.proto)
                let inBefore = try network.clientReceived(service.key.proto)

                let report = try network.exchange(vip: service.key.address, port: service.clientPort, proto: service.key.proto,
                                                  count: Self.connections, firstSourcePort: 40000)
                Thread.sleep(forTimeInterval: 0.5)  // the last ACKs of the closes

                let after = try network.balancer.stats()
                let lbRx = try network.lbInterfaceCounter("rx_packets") - lbRxBefore
                let clientSent = try network.clientSent(service.key.proto) - outBefore
                let clientReceived = try network.clientReceived(service.key.proto) - inBefore
                // Per exchange the client sends at least SYN, ACK, data, FIN (TCP) or one datagram,
                // and receives at least SYN-ACK, answer, FIN (TCP) or one datagram.
                let (sentPerExchange, receivedPerExchange): (UInt64, UInt64) = service.key.proto == .tcp ? (4, 3) : (1, 1)
                func delta(_ reason: StatReason) -> UInt64 { after[reason] - before[reason] }
                let vipPackets = (after.vips[service.key]?.packets ?? 0) - (before.vips[service.key]?.packets ?? 0)
                let realPackets = service.reals.map { (after.reals[$0]?.packets ?? 0) - (before.reals[$0]?.packets ?? 0) }
                print("[e2e] counters, \(service.label): client sent \(clientSent) segments, received \(clientReceived); LB eth0 rx \(lbRx); "
                      + "petrel rx \(delta(.rx)) forward \(delta(.forward)) pass_not_vip \(delta(.passNotVip)) pass_not_ip \(delta(.passNotIP)); "
                      + "VIP \(vipPackets); reals \(realPackets); answered \(report.byReal.sorted { $0.key < $1.key })")

                #expect(report.answered == Self.connections)
                #expect(report.count("real3") == 0)

                // Every client segment went through the balancer, and was counted for the VIP.
                #expect(vipPackets >= clientSent && clientSent >= sentPerExchange * UInt64(Self.connections))
                #expect(delta(.forward) == vipPackets && vipPackets > 0)
                // Per real: packets where the answers came from, none for the drained real.
                #expect(realPackets.reduce(0, +) == vipPackets)
                for (n, packets) in realPackets.enumerated() {
                    let answered = report.count(Plan.realNames[n])
                    #expect((packets == 0) == (answered == 0), "\(Plan.realNames[n]): \(packets) packets, \(answered) answers")
                    let packetShare = Double(packets) / Double(vipPackets)
                    let answerShare = Double(answered) / Double(Self.connections)
                    #expect(abs(packetShare - answerShare) <= 0.05, "\(Plan.realNames[n]): packet share \(packetShare), answer share \(answerShare)")
                }

                // Direct server return: the LB's interface received what Petrel saw, which is the
                // client's packets plus a little ARP/ND; the replies the client got never came by.
                let slack: UInt64 = 20
                #expect(lbRx + slack >= delta(.rx) && delta(.rx) + slack >= lbRx, "LB eth0 rx \(lbRx), petrel rx \(delta(.rx))")
                #expect(delta(.rx) <= clientSent + slack, "petrel rx \(delta(.rx)) vs client sent \(clientSent)")
                #expect(clientReceived >= receivedPerExchange * UInt64(Self.connections), "the answers reached the client")
                #expect(delta(.passNotVip) <= slack && delta(.rx) - delta(.forward) <= slack)
            }
        }
    }
}

extension TestNetwork {
    /// TCP segments or UDP datagrams the client sent (both families).
    func clientSent(_ proto: L4Protocol) throws -> UInt64 {
        proto == .tcp ? try clientCounter("Tcp", "OutSegs") : try clientCounter("Udp", "OutDatagrams") + clientCounter6("Udp6OutDatagrams")
    }

    /// TCP segments or UDP datagrams the client received.
    func clientReceived(_ proto: L4Protocol) throws -> UInt64 {
        proto == .tcp ? try clientCounter("Tcp", "InSegs") : try clientCounter("Udp", "InDatagrams") + clientCounter6("Udp6InDatagrams")
    }
}
