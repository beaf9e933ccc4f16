/// One real of one VIP: the unit health checks judge (a real shared by two VIPs
/// may serve one and not the other).
public struct VipReal: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var vip: VipKey
    public var real: IPAddress

    public init(vip: VipKey, real: IPAddress) {
        self.vip = vip
        self.real = real
    }

    public var description: String { "\(real) of \(vip)" }

    public static func < (lhs: VipReal, rhs: VipReal) -> Bool {
        lhs.vip != rhs.vip ? lhs.vip < rhs.vip : lhs.real < rhs.real
    }
}

/// How health combines with what the operator asked for: a real that health
/// checks took out of a VIP is written with weight 0, exactly like a drain, so
/// it gets no new flows while its established flows stay with it (they are in
/// the connection tables, and the real keeps its id). The operator's weight is
/// kept and comes back when the real does; a drained real stays drained. A source
/// route to a real at weight 0 is written out of service, so its prefix falls to
/// the ring meanwhile (`ApplyPlan.sourceRouteTargets`).
enum HealthOverlay {
    static func effective(_ vips: [Vip], down: Set<VipReal>) -> [Vip] {
        guard !down.isEmpty else { return vips }
        return vips.map { vip in
            var vip = vip
            for index in vip.reals.indices where down.contains(VipReal(vip: vip.key, real: vip.reals[index].address)) {
                vip.reals[index].weight = 0
            }
            return vip
        }
    }
}
