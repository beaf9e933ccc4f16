import CPetrelABI
@testable import Petrel
import Testing

/// The per-CPU caches are sized from the limits (DataPlaneLimits.flowCacheShift and
/// vipCacheShift); the kernel test (VipCacheTests) checks the maps have those sizes.
@Suite("Cache sizes")
struct CacheSizeTests {
    @Test("A flow-cache slot per 8 table entries and two VIP-cache slots per VIP, as powers of two within 2^10 ... 2^16")
    func sizesFollowTheLimits() {
        let defaults = DataPlaneLimits()
        #expect(defaults.flowCacheShift == Int(PETREL_DEFAULT_FLOW_CACHE_SHIFT), "the object's compiled size is the default limits' size")
        #expect(defaults.vipCacheShift == Int(PETREL_DEFAULT_VIP_CACHE_SHIFT))
        #expect(DataPlaneLimits(connectionTableSize: 65_536).flowCacheShift == 13)
        #expect(DataPlaneLimits(connectionTableSize: 65_544).flowCacheShift == 14, "rounded up")
        #expect(DataPlaneLimits(connectionTableSize: 1).flowCacheShift == 10, "never below 1,024 slots")
        #expect(DataPlaneLimits(connectionTableSize: 16_777_216).flowCacheShift == 16, "never above 65,536 slots")
        #expect(DataPlaneLimits(maxVips: 1).vipCacheShift == 10)
        #expect(DataPlaneLimits(maxVips: 10_000).vipCacheShift == 15)
        #expect(DataPlaneLimits(maxVips: 65_536).vipCacheShift == 16)
    }
}
