import Petrel
import Testing

/// Which VIP addresses an instance announces: attached, not stopping, and a usable real.
@Suite("Address announcements")
struct AddressAnnouncementsTests {
    let a = IPAddress("198.18.100.1")!
    let b = IPAddress("fd50:0:100::1")!
    let real1 = IPAddress("198.18.3.11")!
    let real2 = IPAddress("198.18.3.12")!

    func vip(_ address: IPAddress, _ port: UInt16, _ reals: [Real]) -> Vip {
        Vip(key: VipKey(address: address, port: port, proto: .tcp), reals: reals)
    }

    @Test("An address is announced while one of its VIPs has a real with weight > 0")
    func usableReal() {
        let vips = [vip(a, 80, [Real(address: real1, weight: 0)]), vip(a, 443, [Real(address: real2, weight: 1)]),
                    vip(b, 80, [Real(address: real1, weight: 0)])]
        let decided = AddressAnnouncements(vips: vips, attached: true, stopping: false)
        #expect(decided.announced == [a])
        #expect(decided.decisions.map(\.decision) == [.announce, .withdraw(.noUsableReal)])
    }

    @Test("Nothing is announced when detached or stopping")
    func detachedOrStopping() {
        let vips = [vip(a, 80, [Real(address: real1)])]
        #expect(AddressAnnouncements(vips: vips, attached: false, stopping: false).decisions.map(\.decision) == [.withdraw(.notAttached)])
        #expect(AddressAnnouncements(vips: vips, attached: true, stopping: true).decisions.map(\.decision) == [.withdraw(.stopping)])
        #expect(AddressAnnouncements(vips: [], attached: true, stopping: false).decisions.isEmpty)
    }

    struct Unhealthy: RealHealth {
        let down: IPAddress
        func isHealthy(_ real: IPAddress, of vip: VipKey) -> Bool { real != down }
    }

    @Test("The health hook: an address whose only usable real is unhealthy is withdrawn")
    func healthHook() {
        let vips = [vip(a, 80, [Real(address: real1)]), vip(b, 80, [Real(address: real1), Real(address: real2)])]
        let decided = AddressAnnouncements(vips: vips, attached: true, stopping: false, health: Unhealthy(down: real1))
        #expect(decided.announced == [b])
    }

    @Test("The health checks' down set withdraws an address whose every usable real is down for it")
    func healthChecksDownSet() {
        let vips = [vip(a, 80, [Real(address: real1), Real(address: real2)]), vip(b, 80, [Real(address: real1)])]
        let key = VipKey(address: b, port: 80, proto: .tcp)
        let down: Set<VipReal> = [VipReal(vip: key, real: real1), VipReal(vip: VipKey(address: a, port: 80, proto: .tcp), real: real1)]
        let decided = AddressAnnouncements(vips: vips, attached: true, stopping: false, health: HealthChecked(down: down))
        #expect(decided.announced == [a])
        #expect(decided.decisions.map(\.decision) == [.announce, .withdraw(.noUsableReal)])
    }
}
