import CPetrelABI
import Foundation
import PetrelBPF
import PetrelObjects

/// Petrel's data plane, driven from Swift: loads the XDP balancer, fills its
/// maps from a list of VIPs, attaches it to an interface, reads its counters.
///
/// Every change is validated whole before anything is written; writes are
/// ordered so the data plane only ever sees, per VIP, the old or the new state.
/// `@unchecked Sendable`: the mutable state (`applier`, `requested`, `down`) is touched only under `lock`.
public final class LoadBalancer: @unchecked Sendable {
    public let limits: DataPlaneLimits
    /// Where the maps are pinned on bpffs, if anywhere.
    public let pinPath: String?
    /// True when the maps were adopted from an earlier process's pins.
    public let adoptedPinnedMaps: Bool
    /// The loaded balancer program (for BPF_PROG_TEST_RUN; the attached copy shares its maps).
    public let program: BPFProgram
    /// Packet capture's slots (`petrel capture`); none runs after loading.
    public let captures: CaptureSlots

    private let object: BPFObject
    let maps: BalancerMaps
    private let lock = NSLock()
    /// Plans and writes VIP changes; guarded by `lock`.
    private var applier: VipApplier
    private var state: AppliedState { applier.state }
    /// The VIPs as the caller asked for them; `state` holds them as written, after
    /// the health overlay (see `HealthOverlay`).
    private var requested: [VipKey: Vip] = [:]
    /// Reals that health checks took out of their VIP.
    private var down: Set<VipReal> = []

    // MARK: Loading

    /// Loads the balancer. With a `pinPath`, maps pinned there by an earlier
    /// process are adopted (connection tables, counters and rings survive a
    /// restart); otherwise the new maps are pinned there.
    public init(limits: DataPlaneLimits = DataPlaneLimits(), pinPath: String? = nil) throws(PetrelError) {
        try limits.validate()
        self.limits = limits
        self.pinPath = pinPath

        let pinned = try LoadBalancer.pinnedMaps(at: pinPath, limits: limits)
        let (object, maps, program) = try kernel {
            let object = try BPFObject(name: "petrel_balancer", elf: EmbeddedBPFObject.balancer.bytes)
            try BalancerMaps.prepare(object, limits: limits)
            for (name, map) in pinned { try object.reuse(map: name, from: map) }
            try object.load()
            let maps = try BalancerMaps(object: object)
            // Also over adopted pins: the echo reply of this code, not a predecessor's.
            try maps.echoProgram.setProgram(at: 0, to: try object.program(named: BalancerMaps.echoProgramName))
            return (object, maps, try object.program(named: BalancerMaps.programName))
        }
        self.object = object
        self.maps = maps
        self.program = program
        adoptedPinnedMaps = !pinned.isEmpty
        captures = CaptureSlots(maps: maps)

        applier = try VipApplier(limits: limits, store: KernelMapStore(maps: maps), adopting: adoptedPinnedMaps)
        if !adoptedPinnedMaps {
            try kernel { try LoadBalancer.createConnectionTables(in: maps, limits: limits) }
            if let pinPath { try pin(at: pinPath) }
        } else if let pinPath {
            // Pins of an older version: pin the maps it did not have.
            try pin(at: pinPath, only: Set(BalancerMaps.names).subtracting(pinned.keys))
        }
        try captures.reset()
        requested = state.vips
    }

    /// Opens the maps pinned at `path`, checking they were made with the same limits.
    private static func pinnedMaps(at path: String?, limits: DataPlaneLimits) throws(PetrelError) -> [String: BPFMap] {
        guard let path, FileManager.default.fileExists(atPath: "\(path)/vips_v4") else { return [:] }
        let sizes = BalancerMaps.sizes(for: limits)
        var result: [String: BPFMap] = [:]
        for name in BalancerMaps.names {
            let pin = "\(path)/\(BalancerMaps.pinName(name))"
            if BalancerMaps.addedSincePinning.contains(name) && !FileManager.default.fileExists(atPath: pin) { continue }
            let map = try kernel { try BPFMap.openPinned(path: pin, name: name) }
            // The layout first: an older layout may also have had other sizes.
            if let layout = BalancerMaps.valueSizes[name], map.valueSize != layout {
                if BalancerMaps.replacedOnLayoutChange.contains(name) { continue }  // created afresh, its pin replaced
                throw .invalid(field: "pinned map \(path)/\(name)", value: "values of \(map.valueSize) bytes",
                               expected: "values of \(layout) bytes; these pins are of an older layout (remove the pins to start afresh)")
            }
            if let expected = sizes[name], map.maxEntries != expected {
                throw .invalid(field: "pinned map \(path)/\(name)", value: "\(map.maxEntries) entries",
                               expected: "must have \(expected) entries for the configured limits (remove the pins to start afresh)")
            }
            if name == "ring", map.valueSize != limits.ringSize * MemoryLayout<UInt32>.size {
                throw .invalid(field: "pinned map \(path)/ring", value: "rows of \(map.valueSize / 4) slots",
                               expected: "must have rows of ring_size \(limits.ringSize) slots (remove the pins to start afresh)")
            }
            result[name] = map
        }
        return result
    }

    /// One LRU table per CPU and family in conn_tables_v4 and conn_tables_v6. A CPU
    /// whose table cannot be created falls back to the shared table (counted as
    /// event_no_cpu_table).
    private static func createConnectionTables(in maps: BalancerMaps, limits: DataPlaneLimits) throws(BPFError) {
        let cpus = min(BPFMap.possibleCPUs, Int(PETREL_MAX_CPUS))
        let families = [("v4", MemoryLayout<petrel_flow_key_v4>.size, maps.connectionTablesV4),
                        ("v6", MemoryLayout<petrel_flow_key>.size, maps.connectionTablesV6)]
        for (family, keySize, tables) in families {
            for cpu in 0..<cpus {
                guard let table = try? BPFMap.createLRUHash(
                    name: "petrel_conn\(family)_\(cpu)",
                    keySize: keySize, valueSize: MemoryLayout<petrel_conn>.size,
                    maxEntries: limits.connectionTableSize)
                else { continue }
                try tables.setInnerMap(at: UInt32(cpu), to: table)
            }
        }
    }

    private func pin(at path: String, only names: Set<String>? = nil) throws(PetrelError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw .invalid(field: "pin_path", value: path, expected: "must be a writable directory on bpffs (\(error.localizedDescription))")
        }
        for (name, map) in maps.all where names?.contains(name) ?? true {
            let pin = "\(path)/\(BalancerMaps.pinName(name))"
            // Not adopted because of its layout: the old pin makes way for this map.
            if BalancerMaps.replacedOnLayoutChange.contains(name) { unlink(pin) }
            try kernel { try map.pin(at: pin) }
        }
    }

    /// Removes the pinned maps, so the next start begins afresh.
    public func removePins() {
        guard let pinPath else { return }
        for name in BalancerMaps.names { unlink("\(pinPath)/\(BalancerMaps.pinName(name))") }
        rmdir(pinPath)
    }

    // MARK: Forwarding settings

    /// Writes the MACs, MTU and outer source prefixes used for every forwarded packet.
    public func configureForwarding(_ settings: ForwardingSettings) throws(PetrelError) {
        try settings.validate()
        try kernel { try maps.config.update(UInt32(0), settings.abiConfig) }
    }

    /// The forwarding settings currently in the data plane, if any were written.
    public func forwardingSettings() throws(PetrelError) -> ForwardingSettings? {
        guard let config = try kernel({ try maps.config.lookup(UInt32(0), as: petrel_config.self) }), config.mtu != 0 else { return nil }
        return ForwardingSettings(
            interfaceMAC: MACAddress(abiBytes: config.interface_mac), nextHopMAC: MACAddress(abiBytes: config.next_hop_mac), mtu: Int(config.mtu),
            encapSourceV4: IPAddress(abiWords: (config.encap_src_v4_be, 0, 0, 0), family: UInt8(PETREL_FAMILY_IPV4))!,
            encapSourceV6: IPAddress(abiWords: config.encap_src_v6_be, family: UInt8(PETREL_FAMILY_IPV6))!,
            synFloodThreshold: config.syn_flood_threshold,
            guePort: UInt16(bigEndian: config.gue_port_be),
            icmpEchoReply: UInt32(config.icmp_answers) & UInt32(PETREL_ICMP_ECHO_REPLY) != 0,
            icmpTooBig: UInt32(config.icmp_answers) & UInt32(PETREL_ICMP_TOO_BIG) != 0,
            icmpRateLimit: config.icmp_rate_limit)
    }

    // MARK: Attaching

    /// Attaches the balancer to an interface (in the calling thread's network
    /// namespace). A Petrel balancer already attached there is replaced, unless
    /// these maps were adopted from it and it runs the same code, in which case it
    /// is kept: a restart does not interrupt forwarding.
    public func attach(interface name: String, mode: XDPMode = .native) throws(PetrelError) {
        try kernel {
            let interface = try NetworkInterface(named: name)
            let attached = try XDPAttachment.attachedPrograms(on: interface).filter { $0.name == BalancerMaps.programName }
            // Same code already forwarding with these maps: keep it, nothing is interrupted.
            // Other code (an upgrade) is replaced; the maps, and so every flow, carry over.
            if adoptedPinnedMaps && !attached.isEmpty && attached.allSatisfy({ $0.tag == program.tag }) { return }
            if !attached.isEmpty { try XDPAttachment.detach(program: BalancerMaps.programName, from: interface) }
            let copy = try maps.objectSharingMaps(limits: limits)
            try XDPAttachment.attach(object: copy, program: BalancerMaps.programName, to: interface, mode: mode)
        }
    }

    /// Detaches the balancer from the interface; other XDP programs stay.
    public func detach(interface name: String) throws(PetrelError) {
        try kernel {
            let interface = try NetworkInterface(named: name)
            try XDPAttachment.detach(program: BalancerMaps.programName, from: interface)
        }
    }

    /// The Petrel balancer attached to the interface, if any: the kernel's program id and tag.
    public func attachedProgram(interface name: String) throws(PetrelError) -> (id: UInt32, tag: [UInt8])? {
        try kernel {
            let interface = try NetworkInterface(named: name)
            return try XDPAttachment.attachedPrograms(on: interface).first { $0.name == BalancerMaps.programName }.map { ($0.id, $0.tag) }
        }
    }

    /// Whether a Petrel balancer is attached to the interface.
    public func isAttached(interface name: String) throws(PetrelError) -> Bool {
        try kernel {
            let interface = try NetworkInterface(named: name)
            return try XDPAttachment.attachedPrograms(on: interface).contains { $0.name == BalancerMaps.programName }
        }
    }

    // MARK: VIPs and reals

    /// The VIPs as last applied (after adopting pinned maps: as read back from them).
    /// Weights are the caller's, also for reals that health checks took out.
    public var vips: [Vip] {
        lock.lock()
        defer { lock.unlock() }
        return requested.values.sorted { $0.key < $1.key }
    }

    /// The reals that health checks have taken out of their VIP.
    public var realsDown: Set<VipReal> {
        lock.lock()
        defer { lock.unlock() }
        return down
    }

    /// Takes the reals in `down` out of new decisions for their VIP (weight 0 in
    /// the ring, like a drain) and brings every other real back to its requested
    /// weight. Goes through the same plan as `apply`: only changed rings are
    /// rewritten, each VIP switches in one step.
    @discardableResult
    public func setRealsDown(_ down: Set<VipReal>) throws(PetrelError) -> ApplyReport {
        try change(down: down) { $0 }
    }

    /// Makes the data plane serve exactly `vips`. Validates everything first
    /// (throwing without writing anything), then writes only what changed.
    @discardableResult
    public func apply(_ vips: [Vip]) throws(PetrelError) -> ApplyReport {
        try change { _ in vips }
    }

    /// Adds a VIP, or replaces the one with the same key. A refused VIP's
    /// error names its own fields (`reals[0].address`), not its place in the list.
    @discardableResult
    public func upsert(_ vip: Vip) throws(PetrelError) -> ApplyReport {
        if let issue = vip.validate(ringSize: limits.ringSize).first { throw PetrelError(issue) }
        return try change { current in current.filter { $0.key != vip.key } + [vip] }
    }

    /// Removes a VIP; established flows to it stop being forwarded.
    @discardableResult
    public func remove(vip key: VipKey) throws(PetrelError) -> ApplyReport {
        try change { current throws(PetrelError) in
            guard current.contains(where: { $0.key == key }) else { throw .notFound("VIP \(key)") }
            return current.filter { $0.key != key }
        }
    }

    /// Sets one real's weight on one VIP; weight 0 drains it.
    @discardableResult
    public func setWeight(_ weight: UInt32, real address: IPAddress, vip key: VipKey) throws(PetrelError) -> ApplyReport {
        try change { current throws(PetrelError) in
            var all = current
            guard let v = all.firstIndex(where: { $0.key == key }) else { throw .notFound("VIP \(key)") }
            guard let r = all[v].reals.firstIndex(where: { $0.address == address }) else { throw .notFound("real \(address) of VIP \(key)") }
            all[v].reals[r].weight = weight
            return all
        }
    }

    /// Reads the current VIPs, computes the new list and applies it, all under one
    /// lock hold, so concurrent changes cannot lose each other's updates.
    private func change(down newDown: Set<VipReal>? = nil, _ edit: ([Vip]) throws(PetrelError) -> [Vip]) throws(PetrelError) -> ApplyReport {
        lock.lock()
        defer { lock.unlock() }
        let desired = try edit(requested.values.sorted { $0.key < $1.key })
        let report = try applier.apply(HealthOverlay.effective(desired, down: newDown ?? down))
        requested = Dictionary(desired.map { ($0.key, $0) }, uniquingKeysWith: { $1 })
        if let newDown { down = newDown }
        return report
    }

    // MARK: Observing

    /// Every counter, summed over the CPUs.
    public func stats() throws(PetrelError) -> Stats {
        lock.lock()
        let vipIndices = state.vipIndex
        let realIds = state.realIds
        lock.unlock()
        return try kernel {
            var global: [StatReason: UInt64] = [:]
            // One record per CPU holds every counter (struct petrel_counters).
            for record in try maps.stats.lookupPerCPU(UInt32(0), as: petrel_counters.self) {
                withUnsafeBytes(of: record.count) { raw in
                    for reason in StatReason.allCases {
                        global[reason, default: 0] &+= raw.load(fromByteOffset: Int(reason.rawValue) * 8, as: UInt64.self)
                    }
                }
            }
            func traffic(_ map: BPFMap, _ index: UInt32) throws -> Traffic {
                try map.lookupPerCPU(index, as: petrel_traffic.self).reduce(into: Traffic()) {
                    $0.packets += $1.packets
                    $0.bytes += $1.bytes
                }
            }
            var vips: [VipKey: Traffic] = [:]
            for (key, index) in vipIndices { vips[key] = try traffic(maps.vipStats, index) }
            var reals: [IPAddress: Traffic] = [:]
            for (address, id) in realIds { reals[address] = try traffic(maps.realStats, id) }
            return Stats(global: global, vips: vips, reals: reals)
        }
    }

    /// The VIP at a data-plane index (a flow-log record's `vipIndex`), if one is there now.
    public func vipKey(atIndex index: UInt32) -> VipKey? {
        lock.lock()
        defer { lock.unlock() }
        return state.vipIndex.first { $0.value == index }?.key
    }

    /// Every VIP by its data-plane index, now (for naming many flow-log records).
    public func vipKeysByIndex() -> [UInt32: VipKey] {
        lock.lock()
        defer { lock.unlock() }
        return Dictionary(state.vipIndex.map { ($0.value, $0.key) }, uniquingKeysWith: { first, _ in first })
    }

    /// Names for the ids a capture record carries: VIP stats indices and real ids, as applied now.
    public func captureNames() -> (vips: [UInt32: VipKey], reals: [UInt32: IPAddress]) {
        lock.lock()
        defer { lock.unlock() }
        return (Dictionary(state.vipIndex.map { ($1, $0) }, uniquingKeysWith: { a, _ in a }),
                Dictionary(state.realIds.map { ($1, $0) }, uniquingKeysWith: { a, _ in a }))
    }

    /// Starts a capture in a free slot (see `captures`) after checking the filter, and that its VIP and
    /// real exist; nil when every slot is in use.
    public func startCapture(_ filter: CaptureFilter, maxSeconds: Int = CaptureFilter.defaultMaxSeconds) throws(PetrelError) -> Int? {
        try captures.start(try captureFilter(filter, maxSeconds: maxSeconds))
    }

    /// The data plane's filter for a capture: checks it, and that its VIP and real exist.
    func captureFilter(_ filter: CaptureFilter, maxSeconds: Int) throws(PetrelError) -> petrel_capture_filter {
        try filter.validate(maxSeconds: maxSeconds)
        lock.lock()
        defer { lock.unlock() }
        var vipIndex: UInt32?
        if let vip = filter.vip {
            guard let index = state.vipIndex[vip] else { throw .invalid(field: "vip", value: "\(vip)", expected: "must be a VIP of petreld (see `petrel vip list`)") }
            vipIndex = index
        }
        var realId: UInt32?
        if let real = filter.real {
            guard let id = state.realIds[real] else { throw .invalid(field: "real", value: "\(real)", expected: "must be a real of a VIP (see `petrel vip list`)") }
            if let vip = filter.vip, !(requested[vip]?.reals.contains { $0.address == real } ?? false) {
                throw .invalid(field: "real", value: "\(real)", expected: "must be a real of vip \(vip)")
            }
            realId = id
        }
        return filter.abiFilter(vipIndex: vipIndex, realId: realId)
    }

    /// Which VIP matches the flow and which real the data plane sends it to,
    /// computed from the same hash and ring as the BPF program, plus what the
    /// shared connection table remembers for the flow. (A CPU's own table is
    /// consulted first by the data plane and normally agrees; a SYN always
    /// takes a new decision: its source route's real, else the ring's.) On a `quic` VIP, `quicPayload` is the UDP payload
    /// (at least the first byte and the connection ID): a short header whose
    /// server id names a real of the VIP goes there, as in bpf/lib/quic.h.
    /// With `packetLength` (the client's IP packet, in bytes) the explanation also
    /// says whether such a packet fits once encapsulated, and if not, whether it is
    /// answered with ICMP "too big" (bpf/lib/icmp.h) or dropped.
    public func explain(_ flow: Flow, quicPayload: [UInt8]? = nil, packetLength: Int? = nil,
                        dontFragment: Bool = true) throws(PetrelError) -> Explanation {
        let forwarding = try forwardingSettings()
        lock.lock()
        defer { lock.unlock() }
        let exact = VipKey(address: flow.destination, port: flow.destinationPort, proto: flow.proto)
        let wildcard = VipKey(address: flow.destination, port: 0, proto: flow.proto)
        guard let key = state.vips[exact] != nil ? exact : (state.vips[wildcard] != nil ? wildcard : nil),
              let vip = state.vips[key], let ring = state.ring(of: key)
        else { return Explanation(flow: flow, vip: nil, flags: [], hash: 0, ringSlot: nil, ringReal: nil, rememberedReal: nil) }
        var quic: QuicRouting?
        if vip.flags.contains(.quic), flow.proto == .udp, let quicPayload {
            let outcome = QuicConnectionID.classify(udpPayload: quicPayload)
            let real = outcome.serverId.flatMap { id in vip.reals.first { $0.quicServerId == id }?.address }
            quic = QuicRouting(outcome: outcome, real: real)
        }

        let hash = FlowHash.hash(flow, flags: vip.flags)
        let slot = Int(petrel_ring_slot(hash, UInt32(limits.ringSize)))
        let ringRealId = ring[slot]
        var remembered: IPAddress?
        if !vip.flags.contains(.lruBypass),
           let conn = try kernel({ try SharedConnectionTable(maps: maps, limits: limits).lookup(flow) }),
           let address = state.address(ofReal: conn.real_id), state.generation(ofReal: conn.real_id) == conn.real_generation {
            remembered = address
        }
        let encapsulation = Dictionary(vip.reals.map { ($0.address, $0.encapsulation) }, uniquingKeysWith: { a, _ in a })
        // `vip` is as written, after health checks: a real out of service has weight 0 here.
        let sourceRoute = vip.sourceRoute(for: flow.source).map { route in
            SourceRouteDecision(prefix: route.prefix, real: route.real,
                                inService: vip.reals.contains { $0.address == route.real && $0.weight > 0 })
        }
        var explanation = Explanation(flow: flow, vip: key, flags: vip.flags, hash: hash, ringSlot: slot,
                                      ringReal: state.address(ofReal: ringRealId), rememberedReal: remembered,
                                      quic: quic, encapsulationByReal: encapsulation, sourceRoute: sourceRoute)
        if let forwarding, let real = explanation.real, let how = explanation.encapsulation {
            explanation.largestPacket = forwarding.largestPacket(to: real, encapsulation: how, clientFamily: flow.source.family)
            if let packetLength {
                explanation.tooBig = TooBigAnswer.decide(flow: flow, packetLength: packetLength, dontFragment: dontFragment,
                                                         real: real, encapsulation: how, settings: forwarding)
            }
        }
        return explanation
    }

    /// What the data plane does with an ICMP (or ICMPv6) echo request to `address`,
    /// as bpf/lib/icmp.h decides it: answered when a VIP has the address and echo
    /// replies are on (the rate limit aside), else passed to the kernel.
    public func explainEcho(to address: IPAddress) throws(PetrelError) -> EchoExplanation {
        let forwarding = try forwardingSettings()
        lock.lock()
        let hasVip = state.vips.keys.contains { $0.address == address }
        lock.unlock()
        let outcome: EchoExplanation.Outcome = !hasVip ? .passedNoVip
            : forwarding?.icmpEchoReply == true ? .answered : .passedEchoOff
        return EchoExplanation(destination: address, outcome: outcome)
    }

    /// Slots per real in a VIP's ring as written to the kernel, or nil for an unknown VIP.
    public func ringSlots(of key: VipKey) -> [IPAddress: Int]? {
        lock.lock()
        defer { lock.unlock() }
        guard let ring = state.ring(of: key) else { return nil }
        var slots: [IPAddress: Int] = [:]
        for id in ring where id != PETREL_NO_REAL {
            if let address = state.address(ofReal: id) { slots[address, default: 0] += 1 }
        }
        return slots
    }

    /// Verifier figures of the loaded program.
    public func verifierFigures() throws(PetrelError) -> BPFProgram.VerifierFigures {
        try kernel { try program.verifierFigures() }
    }
}

/// What a change did to the data plane.
public struct ApplyReport: Sendable, Equatable {
    public var vipsAdded = 0
    public var vipsRemoved = 0
    public var vipsChanged = 0
    public var realsAdded = 0
    public var realsRemoved = 0
    /// Ring slots whose real changed: only flows hashed to these slots (and not held by
    /// a connection table) move. The new ring is written whole into the VIP's spare row.
    public var ringSlotsChanged = 0
}

/// The answer of `LoadBalancer.explain`.
public struct Explanation: Sendable, CustomStringConvertible {
    public let flow: Flow
    /// The matching VIP (exact port first, then the port-wildcard VIP), if any.
    public let vip: VipKey?
    public let flags: VipFlags
    public let hash: UInt32
    public let ringSlot: Int?
    /// The real the ring gives: where a new connection (a SYN) goes.
    public let ringReal: IPAddress?
    /// The real the shared connection table remembers for this flow, if any.
    public let rememberedReal: IPAddress?
    /// On a `quic` VIP, when a UDP payload was given: what its connection ID says.
    public let quic: QuicRouting?
    /// How each real of the VIP is reached (IP-in-IP or GUE).
    public let encapsulationByReal: [IPAddress: Encapsulation]
    /// The VIP's source route whose prefix is the longest to contain the client, if any.
    public let sourceRoute: SourceRouteDecision?
    /// The largest client IP packet that fits to `real` once encapsulated (the MTU a
    /// "too big" answer names); nil without a real or forwarding settings.
    public var largestPacket: Int?
    /// When asked about a packet length that does not fit: what happens to the packet.
    public var tooBig: TooBigAnswer?

    public init(flow: Flow, vip: VipKey?, flags: VipFlags, hash: UInt32, ringSlot: Int?, ringReal: IPAddress?,
                rememberedReal: IPAddress?, quic: QuicRouting? = nil, encapsulationByReal: [IPAddress: Encapsulation] = [:],
                sourceRoute: SourceRouteDecision? = nil) {
        self.flow = flow
        self.vip = vip
        self.flags = flags
        self.hash = hash
        self.ringSlot = ringSlot
        self.ringReal = ringReal
        self.rememberedReal = rememberedReal
        self.quic = quic
        self.encapsulationByReal = encapsulationByReal
        self.sourceRoute = sourceRoute
    }

    /// Where a new connection of this flow goes (a SYN, or a flow no table knows):
    /// its source route's real if that real is in service, else the ring's.
    public var newConnectionReal: IPAddress? { sourceRoute.flatMap { $0.inService ? $0.real : nil } ?? ringReal }

    /// Where the next packet of this flow goes: the real a QUIC connection ID names,
    /// else its remembered real, else a new decision's.
    public var real: IPAddress? { quic?.real ?? rememberedReal ?? newConnectionReal }
    /// How the packet is encapsulated towards `real`.
    public var encapsulation: Encapsulation? { real.flatMap { encapsulationByReal[$0] } }

    public var description: String {
        guard let vip else { return "\(flow): no VIP matches; the packet is passed to the kernel" }
        var lines = ["\(flow)", "  VIP      \(vip)" + (flags.isEmpty ? "" : " flags \(flags.names.joined(separator: ","))"),
                     "  hash     0x\(String(hash, radix: 16).leftPadded(to: 8)) -> ring slot \(ringSlot ?? 0)"]
        lines.append("  ring     \(ringReal.map { "\($0)" } ?? "no real (the VIP has no real with weight > 0): dropped")")
        if let sourceRoute {
            lines.append("  source   \(sourceRoute.prefix) -> \(sourceRoute.real) (the longest prefix containing the client)"
                + (sourceRoute.inService ? "" : ": out of service (weight 0), the ring decides"))
        }
        if let rememberedReal {
            lines.append("  remembered by the connection table: \(rememberedReal)" + (rememberedReal == newConnectionReal ? "" : " (kept although the ring or route changed)"))
        }
        if let quic {
            lines.append("  QUIC     \(quic.outcome)" + (quic.real.map { " -> \($0)" } ?? (quic.outcome.serverId != nil ? ": no real has that id, normal path" : "")))
        }
        if let largestPacket {
            lines.append("  MTU      packets up to \(largestPacket) bytes fit to this real; larger ones get ICMP too big (with DF)")
        }
        if let tooBig {
            lines.append("  => too big: \(tooBig)")
            return lines.joined(separator: "\n")
        }
        lines.append("  => \(real.map { "forwarded to \($0)" + (encapsulation == .gue ? " in GUE" : "") } ?? "dropped (no real)")")
        return lines.joined(separator: "\n")
    }
}

/// The source route that matches a flow's client, as `explain` reports it.
public struct SourceRouteDecision: Sendable, Equatable {
    /// The longest of the VIP's prefixes that contains the client's address.
    public let prefix: IPPrefix
    /// The real it pins the client to.
    public let real: IPAddress
    /// False while that real has weight 0 (drained, or down by its health check):
    /// new connections are then placed by the ring.
    public let inService: Bool

    public init(prefix: IPPrefix, real: IPAddress, inService: Bool) {
        self.prefix = prefix
        self.real = real
        self.inService = inService
    }
}

/// What happens to a packet that does not fit once encapsulated (bpf/lib/icmp.h).
public enum TooBigAnswer: Sendable, Equatable, CustomStringConvertible {
    /// Answered with ICMP "fragmentation needed" / ICMPv6 "packet too big" naming this MTU.
    case answered(mtu: Int)
    /// Dropped and counted as drop_too_big, for this reason.
    case dropped(String)

    static func decide(flow: Flow, packetLength: Int, dontFragment: Bool, real: IPAddress, encapsulation: Encapsulation,
                       settings: ForwardingSettings) -> TooBigAnswer? {
        let fits = settings.mtu - (real.family == .ipv4 ? 20 : 40) - (encapsulation == .gue ? 8 : 0)
        guard packetLength > fits else { return nil }
        let v4 = flow.source.family == .ipv4
        if v4 && !dontFragment { return .dropped("IPv4 without Don't Fragment: XDP cannot fragment") }
        if !flow.source.namesOneHost { return .dropped("the source \(flow.source) is not one host's address") }
        if !settings.icmpTooBig { return .dropped("too-big answers are off (icmp.too_big: false)") }
        return .answered(mtu: settings.largestPacket(to: real, encapsulation: encapsulation, clientFamily: flow.source.family))
    }

    public var description: String {
        switch self {
        case .answered(let mtu): "answered with ICMP too big, MTU \(mtu) (dropped instead above icmp.rate_limit)"
        case .dropped(let why): "dropped (\(why))"
        }
    }
}

/// The answer of `LoadBalancer.explainEcho`.
public struct EchoExplanation: Sendable, Equatable, CustomStringConvertible {
    public enum Outcome: Sendable, Equatable {
        case answered, passedNoVip, passedEchoOff
    }
    public let destination: IPAddress
    public let outcome: Outcome

    public var description: String {
        switch outcome {
        case .answered: "echo request to \(destination): answered by the balancer with an echo reply from \(destination) (passed to the kernel above icmp.rate_limit)"
        case .passedNoVip: "echo request to \(destination): no VIP has this address; passed to the kernel"
        case .passedEchoOff: "echo request to \(destination): echo replies are off (icmp.echo_reply: false); passed to the kernel"
        }
    }
}

extension IPAddress {
    /// Whether the address names one host, so an ICMP error may be sent to it: not
    /// unspecified, loopback, multicast or (IPv4) class E / broadcast.
    public var namesOneHost: Bool {
        let b = bytes
        if family == .ipv4 { return b[0] != 0 && b[0] != 127 && b[0] < 224 }
        if b[0] == 0xff { return false }
        return !(b.dropLast().allSatisfy { $0 == 0 } && b[15] <= 1)
    }
}
