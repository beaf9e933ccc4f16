import CLibBPF
import CPetrelABI
import Foundation
import Petrel
import PetrelBPF
import Testing
import PetrelTestSupport

/// Loading, pinning, adopting, validation that writes nothing, verifier margin.
@Suite("Lifecycle of the data plane")
struct LifecycleTests {
    @Test("A second process adopts pinned maps: VIPs, rings, connections and counters survive")
    func adoptPinnedMaps() throws {
        let path = "/sys/fs/bpf/petrel-test-\(getpid())-adopt"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let flow = Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: 40000, destination: TestVips.web4.address, destinationPort: 80)

        var first: LoadBalancer? = try makeBalancer(pinPath: path)
        #expect(first?.adoptedPinnedMaps == false)
        let (action, output) = try #require(first).run(PacketBuilder.frame(for: flow))
        #expect(action == .tx)
        let real = try #require(EncapsulatedFrame(output)).outerDestination
        first = nil  // the process is gone; only the pins remain

        let second = try LoadBalancer(limits: DataPlaneLimits(maxVips: 16, maxReals: 64, ringSize: 65537, connectionTableSize: 4096), pinPath: path)
        #expect(second.adoptedPinnedMaps)
        #expect(Set(second.vips.map(\.key)) == Set(TestVips.all.map(\.key)))
        #expect(try second.stats()[.forward] == 1, "counters continue")
        #expect(try second.explain(flow).rememberedReal == real, "the connection table survived")
        // Without re-applying anything, the adopted maps forward as before.
        let again = try second.run(PacketBuilder.frame(for: flow, tcpFlags: PacketBuilder.TCPFlags.ack))
        #expect(try #require(EncapsulatedFrame(again.packet)).outerDestination == real)
        // Applying the same config again writes no ring slot: the diff is empty.
        let report = try second.apply(TestVips.all)
        #expect(report.ringSlotsChanged == 0)
        #expect(report.vipsAdded == 0 && report.vipsRemoved == 0)
        second.removePins()
        #expect(!FileManager.default.fileExists(atPath: "\(path)/vips"))
    }

    @Test("Pins of an older layout (VIP entries without the generation) are refused with an error naming the map")
    func refuseOlderLayout() throws {
        let path = "/sys/fs/bpf/petrel-test-\(getpid())-layout"
        defer { try? FileManager.default.removeItem(atPath: path) }
        var first: LoadBalancer? = try makeBalancer(pinPath: path)
        _ = first
        first = nil
        // As a version before the VIP generation left it: 12-byte VIP entries.
        #expect(unlink("\(path)/vips_v4") == 0)
        let old = try BPFMap.create(type: BPF_MAP_TYPE_HASH, name: "vips_v4", keySize: MemoryLayout<petrel_vip_key_v4>.size,
                                    valueSize: 12, maxEntries: 16)
        try old.pin(at: "\(path)/vips_v4")
        #expect {
            _ = try LoadBalancer(limits: fixtureLimits, pinPath: path)
        } throws: { "\($0)".contains("vips_v4") && "\($0)".contains("older layout") }
    }

    @Test("Pins of the shared tables as LRU maps (a version before the sets) are replaced; established flows keep their reals through the per-CPU tables")
    func replaceOlderSharedTables() throws {
        let path = "/sys/fs/bpf/petrel-test-\(getpid())-shared-layout"
        defer { try? FileManager.default.removeItem(atPath: path) }
        // One CPU: its table learns the flow from the second packet.
        try ThreadAffinity.pin(toCPU: 0)
        defer { ThreadAffinity.unpin() }
        let flow = Flow(proto: .tcp, source: ip("198.18.1.9"), sourcePort: 40200, destination: TestVips.web4.address, destinationPort: 80)
        var first: LoadBalancer? = try makeBalancer(pinPath: path)
        let firstBalancer = try #require(first)
        let real = try #require(try forwardedDestination(firstBalancer, flow, flags: PacketBuilder.TCPFlags.syn))
        #expect(try forwardedDestination(firstBalancer, flow, flags: PacketBuilder.TCPFlags.ack) == real)
        first = nil
        for (name, keySize) in [("conn_shared_v4", MemoryLayout<petrel_flow_key_v4>.size), ("conn_shared_v6", MemoryLayout<petrel_flow_key>.size)] {
            #expect(unlink("\(path)/\(name)") == 0)
            let old = try BPFMap.createLRUHash(name: name, keySize: keySize, valueSize: MemoryLayout<petrel_conn>.size, maxEntries: 4096)
            try old.pin(at: "\(path)/\(name)")
        }

        let second = try LoadBalancer(limits: fixtureLimits, pinPath: path)
        defer { second.removePins() }
        #expect(second.adoptedPinnedMaps)
        #expect(try BPFMap.openPinned(path: "\(path)/conn_shared_v4", name: "conn_shared_v4").valueSize == MemoryLayout<petrel_shared_set_v4>.size,
                "the sets are pinned in place of the LRU map")
        #expect(try second.explain(flow).rememberedReal == nil, "the shared table starts empty")
        // The ring now names another real; the CPU's table, adopted, keeps the flow on its own.
        var candidates = TestVips.reals4
        candidates.removeAll { $0.address == real }
        try second.upsert(Vip(key: TestVips.web4, reals: candidates + [Real(address: real, weight: 0)]))
        #expect(try second.explain(flow).ringReal != real)
        #expect(try forwardedDestination(second, flow, flags: PacketBuilder.TCPFlags.ack) == real)
    }

    @Test("Pins of an older version without the newer maps are adopted; those maps are created, pinned and filled by the next apply")
    func adoptOlderPins() throws {
        let path = "/sys/fs/bpf/petrel-test-\(getpid())-older"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let flow = Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: 40001, destination: TestVips.web4.address, destinationPort: 80)
        var first: LoadBalancer? = try makeBalancer(pinPath: path)
        let firstRun = try #require(first).run(PacketBuilder.frame(for: flow))
        let real = try #require(EncapsulatedFrame(firstRun.packet)).outerDestination
        first = nil
        // As an older petreld left them: without the ICMP answers' maps.
        for name in ["vip_address_set", "icmp_rate", "echo_program", "flow_cache_v4", "flow_cache_v6", "vip_cache", "vip_epoch"] { #expect(unlink("\(path)/\(name)") == 0) }

        let second = try LoadBalancer(limits: DataPlaneLimits(maxVips: 16, maxReals: 64, ringSize: 65537, connectionTableSize: 4096), pinPath: path)
        defer { second.removePins() }
        #expect(second.adoptedPinnedMaps)
        #expect(try second.explain(flow).rememberedReal == real, "the connection table survived the upgrade")
        for name in ["vip_address_set", "icmp_rate", "echo_program", "flow_cache_v4", "flow_cache_v6", "vip_cache", "vip_epoch"] {
            #expect(FileManager.default.fileExists(atPath: "\(path)/\(name)"), "\(name) pinned")
        }
        let ping = PacketBuilder.echoRequest(from: ip("198.18.1.2"), to: TestVips.web4.address, id: 1, sequence: 1, payload: [1])
        #expect(try second.run(ping).action == .pass, "no address is known before the first apply")
        try second.apply(TestVips.all)
        #expect(try second.run(ping).action == .tx, "the apply wrote the VIP addresses")
    }

    @Test("Pins whose counter record or cache slots have another layout (a version with other counters) are adopted; the counters start again")
    func adoptPinsWithOtherCounters() throws {
        let path = "/sys/fs/bpf/petrel-test-\(getpid())-counters"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let flow = Flow(proto: .tcp, source: ip("198.18.1.5"), sourcePort: 40004, destination: TestVips.web4.address, destinationPort: 80)
        var first: LoadBalancer? = try makeBalancer(pinPath: path)
        let firstRun = try #require(first).run(PacketBuilder.frame(for: flow))
        let real = try #require(EncapsulatedFrame(firstRun.packet)).outerDestination
        first = nil
        // As a version with two counters fewer left it.
        #expect(unlink("\(path)/stats") == 0)
        let older = try BPFMap.create(type: BPF_MAP_TYPE_PERCPU_ARRAY, name: "stats", keySize: 4,
                                      valueSize: MemoryLayout<petrel_counters>.size - 16, maxEntries: 1)
        try older.pin(at: "\(path)/stats")
        // ... and with VIP-cache slots of another size.
        #expect(unlink("\(path)/vip_cache") == 0)
        let olderCache = try BPFMap.create(type: BPF_MAP_TYPE_PERCPU_ARRAY, name: "vip_cache", keySize: 4,
                                           valueSize: MemoryLayout<petrel_vip_cache_slot>.size - 8, maxEntries: 1024)
        try olderCache.pin(at: "\(path)/vip_cache")

        let second = try LoadBalancer(limits: DataPlaneLimits(maxVips: 16, maxReals: 64, ringSize: 65537, connectionTableSize: 4096), pinPath: path)
        defer { second.removePins() }
        #expect(second.adoptedPinnedMaps)
        #expect(try second.explain(flow).rememberedReal == real, "the connection table was adopted")
        #expect(try second.stats()[.rx] == 0, "the counters start again")
        _ = try second.run(PacketBuilder.frame(for: flow, tcpFlags: PacketBuilder.TCPFlags.ack))
        #expect(try second.stats()[.rx] == 1 && second.stats()[.forward] == 1)
        #expect(try BPFMap.openPinned(path: "\(path)/stats", name: "stats").valueSize == MemoryLayout<petrel_counters>.size,
                "the new record is pinned in place of the old")
        #expect(try BPFMap.openPinned(path: "\(path)/vip_cache", name: "vip_cache").valueSize == MemoryLayout<petrel_vip_cache_slot>.size)
    }

    @Test("Adopting pins made with other limits is refused with the limit named")
    func adoptWithOtherLimits() throws {
        let path = "/sys/fs/bpf/petrel-test-\(getpid())-limits"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try makeBalancer(pinPath: path)
        defer { first.removePins() }
        #expect {
            _ = try LoadBalancer(limits: DataPlaneLimits(maxVips: 32, maxReals: 64, ringSize: 65537, connectionTableSize: 4096), pinPath: path)
        } throws: { error in
            "\(error)".contains("pinned map") && "\(error)".contains("entries")
        }
    }

    @Test("An invalid change is refused whole, naming the field, and the data plane keeps forwarding as before")
    func invalidChangeWritesNothing() throws {
        let balancer = try makeBalancer()
        let flow = Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: 40000, destination: TestVips.web4.address, destinationPort: 80)
        let before = try balancer.explain(flow)
        let bad: [(vips: [Vip], field: String)] = [
            (TestVips.all + [Vip(key: TestVips.web4)], "vips[4]"),
            ([Vip(key: TestVips.web6, reals: [Real(address: ip("198.18.3.11"))])], "vips[0].reals[0].address"),
            ([Vip(key: TestVips.web4, reals: [Real(address: ip("198.18.3.11")), Real(address: ip("198.18.3.11"))])], "vips[0].reals[1].address"),
            ([Vip(key: TestVips.web4, reals: [Real(address: ip("198.18.3.11"), weight: 2_000_000)])], "vips[0].reals[0].weight"),
            ((0..<17).map { Vip(key: VipKey(address: ip("198.18.100.1"), port: UInt16(1000 + $0), proto: .tcp)) }, "max_vips"),
            ([Vip(key: TestVips.web4, reals: (0..<64).map { Real(address: .v4(198, 18, 4, UInt8($0))) })], "max_reals"),
        ]
        for (vips, field) in bad {
            #expect {
                try balancer.apply(vips)
            } throws: { error in
                "\(error)".contains(field)
            }
        }
        #expect(balancer.vips == TestVips.all.sorted { $0.key < $1.key })
        let after = try balancer.explain(flow)
        #expect(after.ringReal == before.ringReal)
        #expect(try balancer.run(PacketBuilder.frame(for: flow)).action == .tx)
    }

    @Test("The JIT line table maps the program's code to its source lines (petrel-bench attribute)")
    func jitedLineTable() throws {
        let lines = try makeBalancer().program.jitedLines()
        #expect(lines.count > 1_000, "a line-info record per source line of the inlined program")
        // Addresses ascend within each compiled piece: the main program, then each BPF subprogram.
        let descents = zip(lines, lines.dropFirst()).filter { $0.address > $1.address }.count
        #expect(descents <= 8)
        #expect(lines.first?.file.hasSuffix("balancer.bpf.c") == true && lines.first?.source.contains("petrel_balancer") == true)
        #expect(lines.contains { $0.file.hasSuffix("encap.h") && $0.source.contains("bpf_xdp_adjust_head") })
    }

    @Test("The verifier accepts the program with room to spare")
    func verifierMargin() throws {
        let figures = try makeBalancer().verifierFigures()
        print("verifier: \(figures.verifiedInstructions) instructions processed, \(figures.translatedInstructions) in the program")
        // The kernel's limit is 1,000,000 processed instructions; stay far below it
        // so that new features cannot silently push the program over the edge.
        #expect(figures.verifiedInstructions > 0)
        #expect(figures.verifiedInstructions < 100_000)
        // 4,096 until the flow cache (4,095 with it); 25 % above that, so that growth stays visible.
        #expect(figures.translatedInstructions < 5_120)
    }
}

/// The shared connection table alone keeps flows on their real when no CPU has a
/// table of its own (the fallback for per-CPU maps that could not be created).
@Suite("Connection tables")
struct ConnectionTableFallbackTests {
    @Test("Without per-CPU tables the shared table keeps flows sticky, and says so in a counter")
    func sharedTableFallback() throws {
        let path = "/sys/fs/bpf/petrel-test-\(getpid())-fallback"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let balancer = try makeBalancer(pinPath: path)
        defer { balancer.removePins() }
        // Take every per-CPU table away, as if none could have been created.
        for family in ["v4", "v6"] {
            let tables = try BPFMap.openPinned(path: "\(path)/conn_tables_\(family)", name: "conn_tables_\(family)")
            for cpu in 0..<UInt32(BPFMap.possibleCPUs) { try tables.delete(cpu) }
        }

        let flow = Flow(proto: .tcp, source: ip("198.18.1.2"), sourcePort: 40000, destination: TestVips.web4.address, destinationPort: 80)
        let first = try #require(EncapsulatedFrame(try balancer.run(PacketBuilder.frame(for: flow)).packet)).outerDestination
        // Change the ring so that the flow's ring real is another one; the table must win.
        var candidates = TestVips.reals4
        candidates.removeAll { $0.address == first }
        try balancer.upsert(Vip(key: TestVips.web4, reals: candidates + [Real(address: first, weight: 0)]))
        #expect(try balancer.explain(flow).ringReal != first)
        let again = try balancer.run(PacketBuilder.frame(for: flow, tcpFlags: PacketBuilder.TCPFlags.ack))
        #expect(try #require(EncapsulatedFrame(again.packet)).outerDestination == first)

        let stats = try balancer.stats()
        #expect(stats[.eventNoCPUTable] == 2)
        #expect(stats[.eventSharedTableHit] == 1)
        #expect(stats[.eventConnectionHit] == 0)
    }
}

/// The flow cache (bpf/lib/select.h, petrel_flow_cache_v4) in front of this CPU's table:
/// filled from the table, kept when the table loses the flow, never winning over a new decision.
@Suite("Flow cache")
struct FlowCacheTests {
    @Test("A flow the tables lost stays on its real through the flow cache, until a SYN decides it afresh")
    func cacheOutlivesTablesButNotANewDecision() throws {
        let path = "/sys/fs/bpf/petrel-test-\(getpid())-flowcache"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let balancer = try makeBalancer(pinPath: path)
        defer { balancer.removePins() }
        // Every packet on one CPU: each CPU has a cache of its own.
        try ThreadAffinity.pin(toCPU: 0)
        defer { ThreadAffinity.unpin() }
        let flow = Flow(proto: .tcp, source: ip("198.18.1.3"), sourcePort: 40002, destination: TestVips.web4.address, destinationPort: 80)
        func send(_ flags: UInt8) throws -> IPAddress {
            try #require(EncapsulatedFrame(try balancer.run(PacketBuilder.frame(for: flow, tcpFlags: flags)).packet)).outerDestination
        }
        // The flow's entries in the cache of every CPU: their reals (empty or cleared slots have none).
        func cachedReals() throws -> [UInt32] {
            let cache = try BPFMap.openPinned(path: "\(path)/flow_cache_v4", name: "flow_cache_v4")
            var reals: [UInt32] = []
            for slot in 0..<UInt32(cache.maxEntries) {
                for entry in try cache.lookupPerCPU(slot, as: petrel_flow_cache_v4.self)
                where entry.key.src_port_be == UInt16(40002).bigEndian && entry.key.dst_port_be == UInt16(80).bigEndian
                    && entry.conn.real_id != PETREL_NO_REAL {
                    reals.append(entry.conn.real_id)
                }
            }
            return reals
        }

        let first = try send(PacketBuilder.TCPFlags.syn)
        #expect(try cachedReals().isEmpty, "a SYN writes the shared table only")
        #expect(try send(PacketBuilder.TCPFlags.ack) == first)  // this CPU's table learns it, and the cache with it
        #expect(try cachedReals().count == 1)
        #expect(try send(PacketBuilder.TCPFlags.ack) == first)

        // Every table loses the flow (as if evicted), and the ring now names another real.
        let tables = try BPFMap.openPinned(path: "\(path)/conn_tables_v4", name: "conn_tables_v4")
        for cpu in 0..<UInt32(BPFMap.possibleCPUs) {
            let empty = try BPFMap.createLRUHash(name: "petrel_test_\(cpu)", keySize: MemoryLayout<petrel_flow_key_v4>.size,
                                                 valueSize: MemoryLayout<petrel_conn>.size, maxEntries: 1024)
            try tables.setInnerMap(at: cpu, to: empty)
        }
        let shared = try SharedTableV4(pinPath: path)
        #expect(try shared.filledEntries().count == 1)
        try shared.clear()
        var candidates = TestVips.reals4
        candidates.removeAll { $0.address == first }
        try balancer.upsert(Vip(key: TestVips.web4, reals: candidates + [Real(address: first, weight: 0)]))
        let ringReal = try #require(try balancer.explain(flow).ringReal)
        #expect(ringReal != first)

        #expect(try send(PacketBuilder.TCPFlags.ack) == first, "the cache kept the flow on its real")
        #expect(try send(PacketBuilder.TCPFlags.syn) == ringReal, "a SYN decides afresh")
        #expect(try cachedReals().isEmpty, "the new decision cleared the cache's copy")
        #expect(try send(PacketBuilder.TCPFlags.ack) == ringReal, "the cache's old copy did not win over the new decision")
        #expect(try send(PacketBuilder.TCPFlags.ack) == ringReal)
        #expect(try cachedReals().count == 1)
    }
}

/// The VIP cache (bpf/lib/select.h, petrel_vip_cache_slot) in front of the VIP maps:
/// each apply that writes VIP entries bumps vip_epoch, so no CPU goes on with a
/// copy of an entry that was replaced or removed, nor with a cached "no VIP".
@Suite("VIP cache")
struct VipCacheTests {
    @Test("The caches are sized from the limits, and a larger flow cache still answers every packet of a known flow")
    func cachesSizedFromLimits() throws {
        let path = "/sys/fs/bpf/petrel-test-\(getpid())-cachesizes"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let limits = DataPlaneLimits(maxVips: 2_048, maxReals: 64, ringSize: 1031, connectionTableSize: 262_144)
        let balancer = try LoadBalancer(limits: limits, pinPath: path)
        defer { balancer.removePins() }
        try balancer.configureForwarding(ForwardingSettings(interfaceMAC: interfaceMAC, nextHopMAC: nextHopMAC, mtu: 1500))
        try balancer.apply(TestVips.all)
        for (name, shift) in [("flow_cache_v4", limits.flowCacheShift), ("flow_cache_v6", limits.flowCacheShift), ("vip_cache", limits.vipCacheShift)] {
            #expect(try BPFMap.openPinned(path: "\(path)/\(name)", name: name).maxEntries == 1 << shift, "\(name)")
        }
        #expect(limits.flowCacheShift == 15 && limits.vipCacheShift == 12)

        try ThreadAffinity.pin(toCPU: 0)
        defer { ThreadAffinity.unpin() }
        // Many flows, so that their slots spread over the whole larger cache.
        let flows = (0..<200).map { Flow(proto: .tcp, source: .v4(198, 18, 2, UInt8($0)), sourcePort: UInt16(30_000 + $0),
                                         destination: TestVips.web4.address, destinationPort: 80) }
        for flow in flows {
            _ = try balancer.run(PacketBuilder.frame(for: flow, tcpFlags: PacketBuilder.TCPFlags.syn))
            _ = try balancer.run(PacketBuilder.frame(for: flow, tcpFlags: PacketBuilder.TCPFlags.ack))  // the CPU's table and cache learn it
        }
        let before = try balancer.stats()
        for flow in flows { #expect(try balancer.run(PacketBuilder.frame(for: flow, tcpFlags: PacketBuilder.TCPFlags.ack)).action == .tx) }
        let after = try balancer.stats()
        #expect(after[.eventFlowCacheHit] - before[.eventFlowCacheHit] >= 190, "slot collisions aside, every flow from the cache")
        #expect(after[.eventVipCacheMiss] == before[.eventVipCacheMiss])
        // The index spans the whole cache, not the default 8,192 slots nor the minimum 1,024.
        let cache = try BPFMap.openPinned(path: "\(path)/flow_cache_v4", name: "flow_cache_v4")
        var highest: UInt32 = 0
        for slot in 0..<UInt32(cache.maxEntries)
        where try cache.lookupPerCPU(slot, as: petrel_flow_cache_v4.self).contains(where: { $0.key.dst_port_be == UInt16(80).bigEndian }) {
            highest = slot
        }
        #expect(highest >= 1 << PETREL_DEFAULT_FLOW_CACHE_SHIFT)
    }

    @Test("An apply reaches packets at once through the VIP cache: a VIP added where the cache said none, a ring changed, a VIP removed")
    func appliesInvalidateTheCache() throws {
        let path = "/sys/fs/bpf/petrel-test-\(getpid())-vipcache"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bypass = VipKey(address: ip("198.18.100.7"), port: 80, proto: .tcp)
        let other = VipKey(address: ip("198.18.100.7"), port: 81, proto: .tcp)
        let a = Real(address: ip("198.18.3.11")), b = Real(address: ip("198.18.3.12"))
        // Every packet decided afresh (lru_bypass): each one looks its VIP up.
        let balancer = try makeBalancer(vips: [Vip(key: bypass, flags: .lruBypass, reals: [a])], pinPath: path)
        defer { balancer.removePins() }
        try ThreadAffinity.pin(toCPU: 0)  // one CPU, one cache
        defer { ThreadAffinity.unpin() }
        func send(to key: VipKey) throws -> (XDPAction, IPAddress?) {
            let flow = Flow(proto: .tcp, source: ip("198.18.1.4"), sourcePort: 40003, destination: key.address, destinationPort: key.port)
            let (action, packet) = try balancer.run(PacketBuilder.frame(for: flow, tcpFlags: PacketBuilder.TCPFlags.ack))
            return (action, action == .tx ? EncapsulatedFrame(packet)?.outerDestination : nil)
        }
        // This CPU's slots for the VIP address, by port: (VIP found, epoch).
        func cached() throws -> [UInt16: (found: Bool, epoch: UInt64)] {
            let cache = try BPFMap.openPinned(path: "\(path)/vip_cache", name: "vip_cache")
            var slots: [UInt16: (found: Bool, epoch: UInt64)] = [:]
            for index in 0..<UInt32(cache.maxEntries) {
                let slot = try cache.lookupPerCPU(index, as: petrel_vip_cache_slot.self)[0]
                if slot.key.0 == UInt64(bypass.address.words.0.bigEndian) {  // the address's first word as stored
                    slots[UInt16(bigEndian: UInt16(truncatingIfNeeded: slot.key.2))] = (slot.meta.vip_index != PETREL_NO_VIP_INDEX, slot.epoch)
                }
            }
            return slots
        }
        func epoch() throws -> UInt64 {
            try #require(try BPFMap.openPinned(path: "\(path)/vip_epoch", name: ".data.vips").lookup(UInt32(0), as: UInt64.self))
        }

        #expect(try send(to: bypass) == (.tx, a.address))
        #expect(try send(to: bypass) == (.tx, a.address))
        #expect(try send(to: other) == (.pass, nil))
        let start = try epoch()
        #expect(try cached()[80]?.found == true && cached()[80]?.epoch == start, "the VIP's answer is cached")
        #expect(try cached()[81]?.found == false, "so is the answer that port 81 has no VIP")

        // A VIP added where the cache said "none", and the ring changed to a real that replaces a.
        try balancer.apply([Vip(key: bypass, flags: .lruBypass, reals: [b]), Vip(key: other, reals: [a])])
        #expect(try epoch() > start)
        #expect(try send(to: other) == (.tx, a.address), "the cached \"no VIP\" is gone")
        #expect(try send(to: bypass) == (.tx, b.address), "the new ring, not the cached entry's old row (whose real was released)")
        #expect(try cached()[80]?.epoch == epoch(), "refilled under the new epoch")

        // Removed: its packets go to the kernel, not to a cached entry.
        try balancer.apply([Vip(key: other, reals: [a])])
        #expect(try send(to: bypass) == (.pass, nil))
        #expect(try send(to: other) == (.tx, a.address))
        #expect(try balancer.stats()[.dropNoReal] == 0)
    }
}
