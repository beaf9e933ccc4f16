/// The apply logic without the kernel: plans each change against what was
/// applied, runs the plan's writes in order on a `MapStore`, and keeps what the
/// maps now hold. `LoadBalancer` drives one on the kernel's maps; unit tests
/// drive one on memory.
struct VipApplier {
    let limits: DataPlaneLimits
    let store: any MapStore
    /// What the maps hold, as far as this process knows.
    private(set) var state: AppliedState

    /// With `adopting`, the state is read back from the store (maps left by an
    /// earlier process); otherwise the store is taken to be empty.
    init(limits: DataPlaneLimits, store: any MapStore, adopting: Bool) throws(PetrelError) {
        self.limits = limits
        self.store = store
        state = adopting ? AppliedState(snapshot: try store.snapshot(limits: limits), limits: limits) : AppliedState(limits: limits)
    }

    /// Makes the store hold exactly `desired`. Everything is validated and planned
    /// before the first write; a refused change writes nothing.
    mutating func apply(_ desired: [Vip]) throws(PetrelError) -> ApplyReport {
        let plan = try ApplyPlan(desired: desired, current: state, limits: limits)
        let report = plan.report(from: state)
        for write in plan.writes(from: state) {
            do {
                try store.perform(write)
            } catch {
                // A write failed half-way: believe the maps, not our notes, and make
                // sure no CPU goes on with a copy of a VIP entry this plan replaced.
                try? store.perform(.invalidateVipCaches)
                if let snapshot = try? store.snapshot(limits: limits) {
                    state = AppliedState(snapshot: snapshot, limits: limits)
                } else {
                    state.needsFullRewrite = true
                }
                throw error
            }
        }
        state = plan.applied(to: state)
        return report
    }
}
