@testable import Petrel
import CPetrelABI
import Testing
import PetrelTestSupport

// The apply logic (ids, generations, ring rows, refusals, write order) run on
// maps in memory. The kernel tests (PetrelKernelTests) run the same code on the
// real maps; these check the order of every single write, which the kernel
// tests can only sample.

private func ip(_ text: String) -> IPAddress { IPAddress(text)! }

private func vip(_ address: String, port: UInt16 = 80, flags: VipFlags = [], _ reals: [(String, UInt32)]) -> Vip {
    Vip(key: VipKey(address: ip(address), port: port, proto: .tcp), flags: flags,
        reals: reals.map { Real(address: ip($0.0), weight: $0.1) })
}

private let limits = DataPlaneLimits(maxVips: 8, maxReals: 16, ringSize: 13, connectionTableSize: 64)

@Suite("Apply planning on maps in memory")
struct ApplyPlannerTests {
    /// An applier on an empty in-memory store.
    func applier(_ limits: DataPlaneLimits = limits) throws -> (VipApplier, MemoryMapStore) {
        let store = MemoryMapStore()
        return (try VipApplier(limits: limits, store: store, adopting: false), store)
    }

    @Test("A ring switch writes the spare row whole before the VIP points at it")
    func spareRowBeforeFlip() throws {
        var (applier, store) = try applier()
        try applier.apply([vip("198.18.100.1", [("198.18.3.11", 1), ("198.18.3.12", 1)])])
        let oldRow = try #require(store.vips.values.first?.row)
        store.log = []

        let report = try applier.apply([vip("198.18.100.1", [("198.18.3.11", 1), ("198.18.3.12", 3)])])
        let rowWrite = try #require(store.log.firstIndex { if case .ringRow = $0 { true } else { false } })
        let flip = try #require(store.log.firstIndex { if case .vip = $0 { true } else { false } })
        #expect(rowWrite < flip)
        guard case let .ringRow(newRow, slots) = store.log[rowWrite], case let .vip(_, _, _, pointedRow, _) = store.log[flip] else { return }
        #expect(newRow != oldRow, "the row in use is never rewritten in place")
        #expect(pointedRow == newRow)
        #expect(slots.count == limits.ringSize)
        #expect(report.vipsChanged == 1 && report.ringSlotsChanged > 0)
        #expect(store.log == [store.log[rowWrite], store.log[flip], .invalidateVipCaches],
                "no real changed: one row, one VIP entry and the VIP caches' bump, got \(store.log)")
    }

    @Test("A removed real's id is released only after no VIP points at it, and not reused by the same change")
    func realReleasedLast() throws {
        var (applier, store) = try applier()
        try applier.apply([vip("198.18.100.1", [("198.18.3.11", 1), ("198.18.3.12", 1)]),
                           vip("198.18.100.2", [("198.18.3.11", 1)])])
        let id11 = try #require(applier.state.realIds[ip("198.18.3.11")])
        let id12 = try #require(applier.state.realIds[ip("198.18.3.12")])
        store.log = []

        // 198.18.3.12 leaves; 198.18.3.13 arrives in the same change.
        let report = try applier.apply([vip("198.18.100.1", [("198.18.3.11", 1), ("198.18.3.13", 1)]),
                                        vip("198.18.100.2", [("198.18.3.11", 1)])])
        let release = try #require(store.log.firstIndex(of: .real(id: id12, address: nil, generation: 1)))
        let lastFlip = try #require(store.log.lastIndex { if case .vip = $0 { true } else { false } })
        #expect(release > lastFlip)
        #expect(release == store.log.count - 1)
        let id13 = try #require(applier.state.realIds[ip("198.18.3.13")])
        #expect(id13 != id12 && id13 != id11, "an id being released is not handed out by the same change")
        #expect(store.log.first == .resetRealTraffic(id: id13), "a new real's counters are zeroed before it exists")
        #expect(report.realsAdded == 1 && report.realsRemoved == 1)
        // A real still used by another VIP stays.
        #expect(store.reals[id11]?.address == ip("198.18.3.11"))
    }

    @Test("A reused real id gets the next generation, so connections remembered for the old real re-decide")
    func generationOnReuse() throws {
        var (applier, store) = try applier(DataPlaneLimits(maxVips: 8, maxReals: 2, ringSize: 13, connectionTableSize: 64))
        try applier.apply([vip("198.18.100.1", [("198.18.3.11", 1)])])
        #expect(store.reals[1]?.generation == 1)
        try applier.apply([vip("198.18.100.1", [])])
        #expect(store.reals[1]?.address == nil && store.reals[1]?.generation == 1)
        try applier.apply([vip("198.18.100.1", [("198.18.3.12", 1)])])
        #expect(store.reals[1]?.address == ip("198.18.3.12"))
        #expect(store.reals[1]?.generation == 2)
    }

    @Test("A VIP index gets a new generation before a VIP takes it and before that VIP goes, so no earlier holder's flows skip the VIP lookup")
    func vipGenerations() throws {
        var (applier, store) = try applier()
        let a = vip("198.18.100.1", [("198.18.3.11", 1)])
        try applier.apply([a])
        let index = try #require(store.vips[a.key]?.statsIndex)
        #expect(store.vips[a.key]?.generation == 1 && store.vipGenerations[index] == 1)
        let bump = try #require(store.log.firstIndex(of: .vipGeneration(index: index, generation: 1)))
        let entry = try #require(store.log.firstIndex { if case .vip = $0 { true } else { false } })
        #expect(bump < entry)

        // A change keeps the generation: the VIP's known flows stay on the fast path.
        try applier.apply([vip("198.18.100.1", [("198.18.3.11", 1), ("198.18.3.12", 1)])])
        #expect(store.vips[a.key]?.generation == 1 && store.vipGenerations[index] == 1)

        store.log = []
        try applier.apply([])
        let goneBump = try #require(store.log.firstIndex(of: .vipGeneration(index: index, generation: 2)))
        let removal = try #require(store.log.firstIndex(of: .removeVip(a.key)))
        #expect(goneBump < removal)

        // The next VIP on that index has a generation no earlier entry carries.
        let b = vip("198.18.100.2", [("198.18.3.11", 1)])
        try applier.apply([b])
        #expect(store.vips[b.key]?.statsIndex == index)
        #expect(store.vips[b.key]?.generation == 3 && store.vipGenerations[index] == 3)

        // Adopting the maps reads the generations back.
        let adopted = try VipApplier(limits: limits, store: store, adopting: true)
        #expect(adopted.state.generation(ofVipIndex: index) == 3)
    }

    @Test("The filter asks for the VIP first where a known flow's VIP is not enough: lru_bypass, quic, exact beside wildcard")
    func vipFirstBits() {
        let first = UInt32(PETREL_ADDR_VIP_FIRST)
        func bits(_ vips: [Vip]) -> UInt32 {
            AddressFilter(vips: Dictionary(uniqueKeysWithValues: vips.map { ($0.key, $0.flags) })).slots.values.reduce(0, |)
        }
        #expect(bits([vip("198.18.100.1", [])]) & first == 0)
        #expect(bits([vip("198.18.100.1", port: 0, [])]) & first == 0)
        #expect(bits([vip("198.18.100.1", flags: .lruBypass, [])]) & first != 0)
        #expect(bits([vip("198.18.100.1", flags: .quic, [])]) & first != 0)
        #expect(bits([vip("198.18.100.1", []), vip("198.18.100.1", port: 0, [])]) & first != 0)
        #expect(bits([vip("198.18.100.1", []), vip("198.18.100.1", port: 443, [])]) & first == 0)
    }

    @Test("Refused changes (capacity, a bad VIP, a duplicate) write nothing and change nothing")
    func refusalsWriteNothing() throws {
        var (applier, store) = try applier()
        let current = [vip("198.18.100.1", [("198.18.3.11", 1)])]
        try applier.apply(current)
        store.log = []
        let before = store.dataPlaneView

        let tooManyVips = (1...9).map { vip("198.18.100.\($0)", [("198.18.3.11", 1)]) }
        let tooManyReals = [vip("198.18.100.1", (1...8).map { ("198.18.3.\($0)", 1) }),
                            vip("198.18.100.2", (9...16).map { ("198.18.3.\($0)", 1) })]
        let ringTooSmall = [vip("198.18.100.1", (1...13).map { ("198.18.3.\($0)", 1) })]
        let multicastReal = [vip("198.18.100.1", [("224.0.0.5", 1)])]
        let duplicate = current + current
        for (change, expected) in [(tooManyVips, "max_vips"), (tooManyReals, "max_reals"), (ringTooSmall, "ring_size"),
                                   (multicastReal, "vips[0].reals[0].address"), (duplicate, "vips[1]")] {
            #expect { try applier.apply(change) } throws: { "\($0)".contains(expected) }
            #expect(store.log.isEmpty, "refused (\(expected)) but wrote \(store.log)")
            #expect(store.dataPlaneView == before)
            #expect(applier.state.vips.values.sorted { $0.key < $1.key } == current)
        }
    }

    @Test("Random changes: between any two writes every VIP is wholly old or wholly new and points at live reals")
    func randomChangesKeepEveryVipWhole() throws {
        // Room for every real the rounds can name (24) even while ids of removed ones are held.
        var (applier, store) = try applier(DataPlaneLimits(maxVips: 8, maxReals: 64, ringSize: limits.ringSize, connectionTableSize: 64))
        var rng = SeededGenerator(seed: 20_261_201)
        let addresses = ["198.18.100.1", "198.18.100.2", "fd50::100:3", "198.18.100.4", "198.18.100.5"]
        var writesChecked = 0
        for round in 0..<300 {
            var desired: [Vip] = []
            for address in addresses where Bool.random(using: &rng) {
                let v6 = address.contains(":")
                let reals = (1...12).filter { _ in Int.random(in: 0..<4, using: &rng) == 0 }.prefix(6).map { n in
                    (v6 ? "fd50::3:\(n)" : (Bool.random(using: &rng) ? "198.18.3.\(n)" : "fd50::3:\(n)"), UInt32.random(in: 0...3, using: &rng))
                }
                desired.append(vip(address, flags: Bool.random(using: &rng) ? [.lruBypass] : [], reals))
            }
            let before = store.dataPlaneView
            let expectedAfter = try expectedView(of: desired)
            store.afterEachWrite = { store in
                writesChecked += 1
                // Also through the entries a CPU's VIP cache may still hold (until the plan's bump).
                for (key, view) in store.dataPlaneView.map({ ($0.key, $0.value) }) + store.cachedDataPlaneViews {
                    #expect(!view.slots.contains("dangling") && !view.slots.contains { $0.hasPrefix("unwritten") },
                            "round \(round): \(key) points at a released real or an unwritten row")
                    #expect(view == before[key] || view == expectedAfter[key], "round \(round): \(key) is half old, half new")
                }
                #expect(store.vipsHiddenByFilter.isEmpty, "round \(round): the address filter hides \(store.vipsHiddenByFilter)")
            }
            try applier.apply(desired)
            store.afterEachWrite = nil
            #expect(store.cachedVipEntries.isEmpty, "round \(round): the apply ended with VIP entries the caches may still use")
            #expect(store.dataPlaneView == expectedAfter, "round \(round)")
            // The filter holds exactly the VIPs' addresses: removed ones leave it.
            #expect(store.filter == AddressFilter(vips: Dictionary(uniqueKeysWithValues: desired.map { ($0.key, $0.flags) })).slots, "round \(round)")
            // Released rows and ids are not leaked: what is in use is what the VIPs need.
            #expect(applier.state.rows.count == desired.count)
            #expect(Set(applier.state.realIds.keys) == Set(desired.flatMap(\.reals).map(\.address)))
        }
        #expect(writesChecked > 1_000)
    }

    @Test("A write that fails half-way leaves the applier believing the maps; the next apply finishes the job")
    func failureHalfWay() throws {
        var (applier, store) = try applier()
        try applier.apply([vip("198.18.100.1", [("198.18.3.11", 1)]), vip("198.18.100.2", [("198.18.3.12", 1)])])
        let desired = [vip("198.18.100.1", [("198.18.3.13", 1)]), vip("198.18.100.3", [("198.18.3.12", 2)])]
        store.failingWrite = store.log.count + 3
        #expect(throws: PetrelError.self) { try applier.apply(desired) }
        #expect(applier.state.needsFullRewrite, "after a failure the next apply rewrites every ring")
        try applier.apply(desired)
        #expect(store.dataPlaneView == (try expectedView(of: desired)))
        #expect(applier.state.vips.count == 2)
    }

    @Test("Adopting maps written by an earlier applier reads the same VIPs and rings back")
    func adoption() throws {
        var (first, store) = try applier()
        let desired = [vip("198.18.100.1", flags: [.hashWithoutSourcePort], [("198.18.3.11", 1), ("198.18.3.12", 2)])]
        try first.apply(desired)
        var second = try VipApplier(limits: limits, store: store, adopting: true)
        #expect(second.state.vips.keys.sorted() == desired.map(\.key))
        #expect(second.state.realIds == first.state.realIds)
        store.log = []
        try second.apply(desired)
        #expect(store.dataPlaneView == (try expectedView(of: desired)), "the adopted state is rewritten whole, to the same rings")
    }

    @Test("Route changes: between any two writes each client meets its old route's real or its new one, never a third")
    func sourceRoutesChangeWhole() throws {
        var (applier, store) = try applier(DataPlaneLimits(maxVips: 8, maxReals: 64, ringSize: limits.ringSize, connectionTableSize: 64))
        var rng = SeededGenerator(seed: 20_261_202)
        let reals = (1...4).map { ("198.18.3.\($0)", UInt32(1)) }
        // Nested prefixes over 10.0.0.0/8, and clients spread over them.
        let prefixes = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25", "10.1.2.200/32", "10.2.0.0/15", "10.3.0.0/16"]
            .map { IPPrefix($0)! }
        let clients = ["10.1.2.200", "10.1.2.130", "10.1.2.5", "10.1.9.9", "10.2.0.1", "10.3.4.5", "10.9.9.9", "11.0.0.1"].map(ip)
        let keys = ["198.18.100.1", "198.18.100.2"].map { VipKey(address: ip($0), port: 80, proto: .tcp) }
        func expected(_ vips: [Vip]) -> [VipKey: [String]] {
            Dictionary(uniqueKeysWithValues: keys.map { key in
                let vip = vips.first { $0.key == key }
                return (key, clients.map { client in
                    guard let vip, let route = vip.sourceRoute(for: client),
                          vip.reals.contains(where: { $0.address == route.real && $0.weight > 0 }) else { return "ring" }
                    return "\(route.real)"
                })
            })
        }
        var writesChecked = 0
        for round in 0..<300 {
            var desired: [Vip] = []
            for key in keys where Int.random(in: 0..<5, using: &rng) > 0 {
                var vip = vip("\(key.address)", reals.map { ($0.0, Int.random(in: 0..<5, using: &rng) == 0 ? 0 : $0.1) })
                vip.sourceRoutes = prefixes.filter { _ in Bool.random(using: &rng) }
                    .map { SourceRoute(prefix: $0, real: vip.reals.randomElement(using: &rng)!.address) }
                desired.append(vip)
            }
            let before = Dictionary(uniqueKeysWithValues: keys.map { key in (key, clients.map { store.sourceRouteView(of: key, client: $0) }) })
            let after = expected(desired)
            store.afterEachWrite = { store in
                writesChecked += 1
                for key in keys where store.vips[key] != nil {
                    for (c, client) in clients.enumerated() {
                        let now = store.sourceRouteView(of: key, client: client)
                        #expect(now != "dangling", "round \(round): \(client) to \(key) meets a released real")
                        #expect(now == before[key]![c] || now == after[key]![c],
                                "round \(round): \(client) to \(key) meets \(now), neither \(before[key]![c]) nor \(after[key]![c])")
                    }
                }
            }
            try applier.apply(desired)
            store.afterEachWrite = nil
            for key in keys where desired.contains(where: { $0.key == key }) {
                #expect(clients.map { store.sourceRouteView(of: key, client: $0) } == after[key]!, "round \(round)")
            }
            // Nothing is left behind: the trie holds exactly the routes of the VIPs there are.
            #expect(store.sourceRoutes.values.reduce(0) { $0 + $1.count } == desired.reduce(0) { $0 + $1.sourceRoutes.count }, "round \(round)")
        }
        #expect(writesChecked > 1_000)
    }

    @Test("Routes over the data plane's limit, all VIPs together, are refused and write nothing")
    func sourceRouteCapacity() throws {
        var (applier, store) = try applier()
        let half = SourceRoute.maxCount / 2 + 1
        func routed(_ address: String) -> Vip {
            var vip = vip(address, [("198.18.3.11", 1)])
            vip.sourceRoutes = (0..<half).map { SourceRoute(prefix: IPPrefix(address: .v4(0x0a00_0000 + UInt32($0)), length: 32), real: ip("198.18.3.11")) }
            return vip
        }
        try applier.apply([routed("198.18.100.1")])
        store.log = []
        #expect { try applier.apply([routed("198.18.100.1"), routed("198.18.100.2")]) } throws: { "\($0)".contains("source routes") }
        #expect(store.log.isEmpty)
    }

    /// What a packet must meet once `vips` are applied: each VIP's Maglev ring, by address.
    func expectedView(of vips: [Vip]) throws -> [VipKey: MemoryMapStore.VipView] {
        var view: [VipKey: MemoryMapStore.VipView] = [:]
        for vip in vips {
            let ring = try MaglevRing(reals: vip.reals.sorted { $0.address < $1.address }, size: limits.ringSize)
            view[vip.key] = .init(flags: vip.flags, slots: ring.slots.map { $0 < 0 ? "-" : "\(ring.reals[Int($0)].address)" })
        }
        return view
    }
}
