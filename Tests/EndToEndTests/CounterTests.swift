import Foundation
import Petrel
import Testing

/// Petrel's counters against what the client and the LB's interface counted,
/// and direct server return shown by them: replies never reach the LB.
@Suite("End to end: counters and direct server return", .serialized)
struct CounterTests {
    static let connections = 200

    @Test("Per-VIP and per-real packets match the client's traffic; the LB sees only client-to-VIP packets")
    func countersMatchTraffic() throws {
        let service = Service.tcp4
        // real3 is drained: it answers nothing, so it must count nothing.
        try withTestNetwork(vips: [service.vip(weights: [1, 2, 0])]) { network in
            let before = try network.balancer.stats()
            let lbRxBefore = try network.lbInterfaceCounter("rx_packets")
            let outBefore = try network.clientCounter("Tcp", "OutSegs")
            let inBefore = try network.clientCounter("Tcp", "InSegs")

            let report = try network.exchange(vip: service.key.address, port: service.clientPort, proto: .tcp,
                                              count: Self.connections, firstSourcePort: 40000)
            Thread.sleep(forTimeInterval: 0.5)  // the last ACKs of the closes

            let after = try network.balancer.stats()
            let lbRx = try network.lbInterfaceCounter("rx_packets") - lbRxBefore
            let clientSent = try network.clientCounter("Tcp", "OutSegs") - outBefore
            let clientReceived = try network.clientCounter("Tcp", "InSegs") - inBefore
            func delta(_ reason: StatReason) -> UInt64 { after[reason] - before[reason] }
            let vipPackets = (after.vips[service.key]?.packets ?? 0) - (before.vips[service.key]?.packets ?? 0)
            let realPackets = service.reals.map { (after.reals[$0]?.packets ?? 0) - (before.reals[$0]?.packets ?? 0) }
            print("[e2e] counters: client sent \(clientSent) segments, received \(clientReceived); LB eth0 rx \(lbRx); "
                  + "petrel rx \(delta(.rx)) forward \(delta(.forward)) pass_not_vip \(delta(.passNotVip)) pass_not_ip \(delta(.passNotIP)); "
                  + "VIP \(vipPackets); reals \(realPackets); answered \(report.byReal.sorted { $0.key < $1.key })")

            #expect(report.answered == Self.connections)
            #expect(report.count("real3") == 0)

            // Every client segment went through the balancer, and was counted for the VIP.
            #expect(vipPackets >= clientSent && clientSent >= 4 * UInt64(Self.connections))
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
            #expect(clientReceived >= 3 * UInt64(Self.connections), "SYN-ACK, answer and FIN per connection")
            #expect(delta(.passNotVip) <= slack && delta(.rx) - delta(.forward) <= slack)
        }
    }
}
