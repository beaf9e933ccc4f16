import CPetrelABI
import Foundation
import Petrel
import PetrelBPF
import PetrelTestSupport
import Testing

/// The shared IPv4 connection table (conn_shared_v4, sets of petrel_shared_entry_v4),
/// read and written through its pin with the ABI's own set index and check, so the
/// tests see what the data plane wrote, and can tear an entry on purpose.
struct SharedTableV4 {
    let map: BPFMap
    let sets: Int

    init(pinPath: String, limits: DataPlaneLimits = fixtureLimits) throws {
        map = try BPFMap.openPinned(path: "\(pinPath)/conn_shared_v4", name: "conn_shared_v4")
        sets = limits.sharedTableSets
    }

    static func key(of flow: Flow) -> petrel_flow_key_v4 {
        var key = petrel_flow_key_v4()
        key.src_be = flow.source.bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        key.dst_be = flow.destination.bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        key.src_port_be = flow.sourcePort.bigEndian
        key.dst_port_be = flow.destinationPort.bigEndian
        key.protocol = flow.proto.number
        return key
    }

    func set(of flow: Flow) -> UInt32 {
        var key = Self.key(of: flow), a: UInt64 = 0, b: UInt64 = 0
        petrel_fold_flow_v4(&key, &a, &b)
        return petrel_shared_set(a, b, UInt32(sets))
    }

    /// The check the data plane gives an entry with this key and tail.
    static func check(_ entry: petrel_shared_entry_v4) -> UInt64 {
        let key = words(entry.key), tail = words(entry.tail)
        return key.withUnsafeBufferPointer { k in tail.withUnsafeBufferPointer { t in petrel_shared_check(k.baseAddress, Int32(k.count), t.baseAddress) } }
    }

    static func words<Value: BitwiseCopyable>(_ value: Value) -> [UInt64] {
        withUnsafeBytes(of: value) { bytes in (0..<bytes.count / 8).map { bytes.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) } }
    }

    func entries(inSet index: UInt32) throws -> [petrel_shared_entry_v4] {
        try #require(try map.lookup(index, elementsOf: petrel_shared_entry_v4.self))
    }

    func write(_ entries: [petrel_shared_entry_v4], toSet index: UInt32) throws {
        try map.update(index, elements: entries)
    }

    /// The way of the set holding `flow`'s entry, and the entry.
    func entry(of flow: Flow) throws -> (way: Int, entry: petrel_shared_entry_v4)? {
        let key = Self.words(Self.key(of: flow))
        return try entries(inSet: set(of: flow)).enumerated().first { Self.words($0.element.key) == key }.map { ($0.offset, $0.element) }
    }

    /// Every entry that holds a flow (a check), in every set.
    func filledEntries() throws -> [petrel_shared_entry_v4] {
        try (0..<UInt32(sets)).flatMap { try entries(inSet: $0).filter { $0.check != 0 } }
    }

    /// Empties every set, as if the table had lost every flow.
    func clear() throws {
        let empty = [petrel_shared_entry_v4](repeating: petrel_shared_entry_v4(), count: Int(PETREL_SHARED_TABLE_WAYS))
        for index in 0..<UInt32(sets) { try write(empty, toSet: index) }
    }
}

/// The shared tables in the kernel: sets written with plain stores, every entry
/// checked (bpf/lib/select.h, lookup_shared and update_shared).
@Suite("Shared connection tables")
struct SharedTableTests {
    /// A balancer whose CPUs have no tables of their own: the shared table alone remembers flows.
    func sharedOnlyBalancer(_ name: String) throws -> (LoadBalancer, String) {
        let path = "/sys/fs/bpf/petrel-test-\(getpid())-\(name)"
        let balancer = try makeBalancer(pinPath: path)
        for family in ["v4", "v6"] {
            let tables = try BPFMap.openPinned(path: "\(path)/conn_tables_\(family)", name: "conn_tables_\(family)")
            for cpu in 0..<UInt32(BPFMap.possibleCPUs) { try tables.delete(cpu) }
        }
        return (balancer, path)
    }

    @Test("A SYN's decision lands in its flow's set with the check the ABI gives; an entry whose check does not match reads as none")
    func checkedEntries() throws {
        let (balancer, path) = try sharedOnlyBalancer("shared-check")
        defer { balancer.removePins(); try? FileManager.default.removeItem(atPath: path) }
        let table = try SharedTableV4(pinPath: path)
        let flow = Flow(proto: .tcp, source: ip("198.18.1.7"), sourcePort: 40100, destination: TestVips.web4.address, destinationPort: 80)

        let first = try #require(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn))
        let (way, written) = try #require(try table.entry(of: flow), "the SYN wrote the flow's set")
        #expect(written.check == SharedTableV4.check(written), "the kernel's check is the ABI's")
        #expect(try table.filledEntries().count == 1)
        #expect(try balancer.explain(flow).rememberedReal == first)

        // The ring now names another real: the table keeps the flow on its real.
        var candidates = TestVips.reals4
        candidates.removeAll { $0.address == first }
        try balancer.upsert(Vip(key: TestVips.web4, reals: candidates + [Real(address: first, weight: 0)]))
        let ringReal = try #require(try balancer.explain(flow).ringReal)
        #expect(ringReal != first)
        #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.ack) == first)
        #expect(try balancer.stats()[.eventSharedTableHit] == 1)

        // Torn: the tail changed (another flow hash), the check left as it was.
        var torn = try table.entries(inSet: table.set(of: flow))
        torn[way].tail.conn.flow_hash ^= 0x5a5a
        try table.write(torn, toSet: table.set(of: flow))
        #expect(try balancer.explain(flow).rememberedReal == nil, "explain reads the entry as the data plane does")
        #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.ack) == ringReal, "the ring decided")
        #expect(try balancer.stats()[.eventSharedTableHit] == 1)
        // That decision was written over the torn entry, whole.
        let rewritten = try #require(try table.entry(of: flow))
        #expect(rewritten.way == way && rewritten.entry.check == SharedTableV4.check(rewritten.entry))
        #expect(try balancer.explain(flow).rememberedReal == ringReal)

        // The first decision again, with its check mended: taken.
        var mended = try table.entries(inSet: table.set(of: flow))
        mended[way] = written
        mended[way].tail.conn.flow_hash ^= 0x5a5a
        mended[way].check = SharedTableV4.check(mended[way])
        try table.write(mended, toSet: table.set(of: flow))
        #expect(try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.ack) == first)
        #expect(try balancer.stats()[.eventSharedTableHit] == 2)
    }

    @Test("A full set gives its oldest entry to a new flow; a flow already in the set is written over in place")
    func fullSetReplacesOldest() throws {
        let (balancer, path) = try sharedOnlyBalancer("shared-sets")
        defer { balancer.removePins(); try? FileManager.default.removeItem(atPath: path) }
        let table = try SharedTableV4(pinPath: path)
        func flow(_ port: UInt16) -> Flow {
            Flow(proto: .tcp, source: ip("198.18.1.8"), sourcePort: port, destination: TestVips.web4.address, destinationPort: 80)
        }
        // Five flows of one set: one more than it holds.
        let set = table.set(of: flow(20000))
        let flows = Array((20000...UInt16.max).lazy.map(flow).filter { table.set(of: $0) == set }.prefix(Int(PETREL_SHARED_TABLE_WAYS) + 1))
        let (oldest, refreshed, newest) = (flows[0], flows[1], flows[Int(PETREL_SHARED_TABLE_WAYS)])
        // The stamps count the kernel's ticks (at most 10 ms at HZ 100): a tick apart each.
        let tick = 0.015
        #expect(flows.count == Int(PETREL_SHARED_TABLE_WAYS) + 1)
        for flow in flows.dropLast() {
            _ = try forwardedDestination(balancer, flow, flags: PacketBuilder.TCPFlags.syn)
            Thread.sleep(forTimeInterval: tick)
        }
        #expect(try table.entries(inSet: set).allSatisfy { $0.check != 0 }, "the set is full")

        let refreshedWay = try #require(try table.entry(of: refreshed)).way
        _ = try forwardedDestination(balancer, refreshed, flags: PacketBuilder.TCPFlags.syn)
        #expect(try table.entry(of: refreshed)?.way == refreshedWay, "a new decision for a flow in the set takes its entry")
        Thread.sleep(forTimeInterval: tick)

        let oldestWay = try #require(try table.entry(of: oldest)).way
        _ = try forwardedDestination(balancer, newest, flags: PacketBuilder.TCPFlags.syn)
        #expect(try table.entry(of: newest)?.way == oldestWay, "the new flow took the oldest entry")
        #expect(try table.entry(of: oldest) == nil)
        #expect(try balancer.explain(oldest).rememberedReal == nil)
        for flow in flows.dropFirst() {
            #expect(try balancer.explain(flow).rememberedReal != nil, "\(flow) still remembered")
        }
        #expect(try table.filledEntries().count == Int(PETREL_SHARED_TABLE_WAYS))
    }
}
