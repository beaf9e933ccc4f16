/// Whether a real may take new traffic besides its weight: the health checks'
/// verdict (`HealthChecked`), or every real healthy when nothing is checked.
public protocol RealHealth: Sendable {
    func isHealthy(_ real: IPAddress, of vip: VipKey) -> Bool
}

/// Every real is healthy: for a balancer without health checks.
public struct AssumeHealthy: RealHealth {
    public init() {}
    public func isHealthy(_ real: IPAddress, of vip: VipKey) -> Bool { true }
}

/// Which VIP addresses an instance should announce to its routers, and why the
/// others are withdrawn. An address is announced as a host route only while the
/// balancer is attached, the instance is not stopping, and at least one VIP on the
/// address has a usable real (weight > 0 and healthy). Several VIPs (ports,
/// protocols) may share an address; one route covers them all.
public struct AddressAnnouncements: Equatable, Sendable {
    public enum Decision: Equatable, Sendable {
        case announce
        case withdraw(WithdrawReason)
    }

    public enum WithdrawReason: String, Equatable, Sendable {
        case notAttached = "not_attached"
        case noUsableReal = "no_usable_real"
        case stopping
    }

    /// Every VIP address, sorted, with its decision.
    public let decisions: [(address: IPAddress, decision: Decision)]

    public init(vips: [Vip], attached: Bool, stopping: Bool, health: any RealHealth = AssumeHealthy()) {
        var usable: [IPAddress: Bool] = [:]
        for vip in vips {
            let serves = vip.reals.contains { $0.weight > 0 && health.isHealthy($0.address, of: vip.key) }
            usable[vip.key.address] = (usable[vip.key.address] ?? false) || serves
        }
        decisions = usable.keys.sorted().map { address in
            if stopping { return (address, .withdraw(.stopping)) }
            if !attached { return (address, .withdraw(.notAttached)) }
            return (address, usable[address] == true ? .announce : .withdraw(.noUsableReal))
        }
    }

    /// The addresses to announce, sorted.
    public var announced: [IPAddress] {
        decisions.filter { $0.decision == .announce }.map(\.address)
    }

    public static func == (lhs: AddressAnnouncements, rhs: AddressAnnouncements) -> Bool {
        lhs.decisions.elementsEqual(rhs.decisions) { $0.address == $1.address && $0.decision == $1.decision }
    }
}

/// The health checks' verdict as the data plane holds it: a real is unhealthy for a
/// VIP while it is in the balancer's down set.
public struct HealthChecked: RealHealth {
    public let down: Set<VipReal>
    public init(down: Set<VipReal>) { self.down = down }
    public func isHealthy(_ real: IPAddress, of vip: VipKey) -> Bool { !down.contains(VipReal(vip: vip, real: real)) }
}
