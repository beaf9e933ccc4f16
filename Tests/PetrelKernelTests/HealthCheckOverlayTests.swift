import Foundation
import Petrel
import PetrelTestSupport
import Testing

/// Health in the kernel: `setRealsDown` takes a real out of new decisions through
/// the same apply plan as a config change, keeps its established flows, and
/// never touches the operator's weights.
@Suite("HealthCheck: down reals in the data plane")
struct HealthCheckOverlayTests {
    @Test("A down real gets no new flows, keeps its established ones and its weight; up again, it takes new flows")
    func downAndUp() throws {
        let balancer = try makeBalancer()
        let sick = TestVips.reals4[1].address
        let key = VipReal(vip: TestVips.web4, real: sick)
        var established: [Flow] = []
        for flow in webFlows(300, seed: 11) where try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn) == sick {
            established.append(flow)
        }
        #expect(established.count > 50)

        let report = try balancer.setRealsDown([key])
        #expect(report.vipsChanged == 1 && report.ringSlotsChanged > 0 && report.realsRemoved == 0)
        #expect(balancer.realsDown == [key])
        #expect(balancer.ringSlots(of: TestVips.web4)?[sick] == nil, "no slot left for the down real")
        #expect(balancer.ringSlots(of: TestVips.dns4)?[sick] ?? 0 > 0, "the same real on another VIP is untouched")
        #expect(balancer.vips.first { $0.key == TestVips.web4 }?.reals.first { $0.address == sick }?.weight == 1, "the operator's weight stays")
        for flow in established {
            #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.ack) == sick, "established flow stays")
        }
        for flow in webFlows(300, seed: 12) {
            let real = try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn)
            #expect(real != nil && real != sick)
        }

        try balancer.setRealsDown([])
        let back = try webFlows(300, seed: 13).filter { try forwardedDestination(balancer, $0, flags: PacketBuilder.TCPFlags.syn) == sick }
        #expect(back.count > 50, "up again: new flows reach it")
    }

    @Test("Operator changes and health combine: a drained real stays drained; a reload keeps a down real out")
    func operatorAndHealth() throws {
        let balancer = try makeBalancer()
        let drained = TestVips.reals4[0].address, sick = TestVips.reals4[2].address
        try balancer.setWeight(0, real: drained, vip: TestVips.web4)
        try balancer.setRealsDown([VipReal(vip: TestVips.web4, real: sick)])
        // A reload of the same VIPs (weights as in the file) keeps health's verdict.
        try balancer.apply(TestVips.all)
        var slots = try #require(balancer.ringSlots(of: TestVips.web4))
        #expect(slots[sick] == nil && slots[drained] ?? 0 > 0, "reload: the down real stays out, the reloaded weight counts")
        try balancer.setWeight(0, real: drained, vip: TestVips.web4)
        try balancer.setRealsDown([])
        slots = try #require(balancer.ringSlots(of: TestVips.web4))
        #expect(slots[drained] == nil, "healthy but drained: still out")
        #expect(slots[sick] ?? 0 > 0)

        // Every real down: the ring is empty and new packets are dropped and counted.
        try balancer.setRealsDown(Set(TestVips.reals4.map { VipReal(vip: TestVips.web4, real: $0.address) }))
        let before = try balancer.stats()[.dropNoReal]
        let flow = webFlows(1, seed: 14)[0]
        #expect(try balancer.run(PacketBuilder.frame(for: flow, tcpFlags: PacketBuilder.TCPFlags.syn)).action == .drop)
        #expect(try balancer.stats()[.dropNoReal] == before + 1)
    }
}
