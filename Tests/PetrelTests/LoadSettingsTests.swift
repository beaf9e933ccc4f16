import CPetrelABI
@testable import Petrel
import Testing

/// What the loader sets before the balancer is loaded (petrel_load_settings): the
/// caches' sizes from the limits (the kernel test VipCacheTests checks the maps have
/// them), and the kernel's tick rate for the per-second limits.
@Suite("Load-time settings")
struct LoadSettingsTests {
    @Test("A flow-cache slot per 8 table entries (2^10 ... 2^16 slots) and two VIP-cache slots per VIP (2^10 ... 2^13), as powers of two")
    func sizesFollowTheLimits() {
        let defaults = DataPlaneLimits()
        #expect(defaults.flowCacheShift == Int(PETREL_DEFAULT_FLOW_CACHE_SHIFT), "the object's compiled size is the default limits' size")
        #expect(defaults.vipCacheShift == Int(PETREL_DEFAULT_VIP_CACHE_SHIFT))
        #expect(DataPlaneLimits(connectionTableSize: 65_536).flowCacheShift == 13)
        #expect(DataPlaneLimits(connectionTableSize: 65_544).flowCacheShift == 14, "rounded up")
        #expect(DataPlaneLimits(connectionTableSize: 1).flowCacheShift == 10, "never below 1,024 slots")
        #expect(DataPlaneLimits(connectionTableSize: 16_777_216).flowCacheShift == 16, "never above 65,536 slots")
        #expect(DataPlaneLimits(maxVips: 1).vipCacheShift == 10)
        #expect(DataPlaneLimits(maxVips: 2_048).vipCacheShift == 12)
        #expect(DataPlaneLimits(maxVips: 10_000).vipCacheShift == 13, "never above 8,192 slots")
        #expect(DataPlaneLimits(maxVips: 65_536).vipCacheShift == 13)
    }

    @Test("The tick rate is one of the kernel's HZ choices (ConnectionPacketTests.synFloodGuard checks a window lasts a second)")
    func ticksPerSecond() {
        #expect([100, 250, 300, 1000].contains(BalancerMaps.kernelTicksPerSecond), "\(BalancerMaps.kernelTicksPerSecond)")
    }
}
