import Petrel
import PetrelHealth
import Yams

/// Turns a composed YAML document into a `PetrelConfiguration`, reporting every
/// problem to `issues`. The result is nil when anything was reported.
struct ConfigDecoder {
    let issues: IssueCollector

    // MARK: Keys

    /// The keys of each mapping, in the order the README documents them.
    enum Keys {
        static let top = [
            "interface", "attach_mode", "next_hop", "encapsulation", "ring_size", "connection_table_size",
            "max_vips", "max_reals", "mtu", "syn_flood_threshold", "icmp", "pin_path", "admin", "metrics", "health_check", "bgp", "vips",
        ]
        static let nextHop = ["mac", "gateway"]
        static let encapsulation = ["source_v4", "source_v6", "gue_port"]
        static let icmp = ["echo_reply", "too_big", "rate_limit"]
        static let admin = ["socket", "tcp"]
        static let metrics = ["listen"]
        static let vip = ["address", "port", "protocol", "flags", "health_check", "reals", "source_routes"]
        static let sourceRoute = ["prefix", "real"]
        static let real = ["address", "weight", "encapsulation", "quic_server_id", "health_check"]
    }

    typealias Limits = PetrelConfiguration.Limits
    typealias Defaults = PetrelConfiguration.Defaults

    // MARK: The document

    func decode(_ document: Node?) -> PetrelConfiguration? {
        // An empty file (or a lone `~`) is an empty mapping: it then fails for its missing keys.
        let emptyMapping = Node([(Node, Node)]())
        var root = ConfigNode(node: document ?? emptyMapping, field: "", issues: issues)
        if root.isNull { root = ConfigNode(node: emptyMapping, field: "", issues: issues) }
        guard case .mapping = root.node, let top = root.mapping(keys: Keys.top) else {
            root.report("the file must be a mapping of settings (interface: eth0 ...), got \(root.describe())")
            return nil
        }

        var config = PetrelConfiguration(interface: "", nextHop: .mac(MACAddress(0, 0, 0, 0, 0, 0)))
        if let interface = top.required("interface")?.interfaceName() { config.interface = interface }
        if let mode = top.setting("attach_mode", default: Defaults.attachMode, {
            $0.choice(of: PetrelConfiguration.AttachMode.self)
        }) { config.attachMode = mode }
        if let node = top.required("next_hop"), let nextHop = readNextHop(node) { config.nextHop = nextHop }
        if let node = top.optional("encapsulation") { readEncapsulation(node, into: &config) }

        let ringSize = top.setting("ring_size", default: Defaults.ringSize) { $0.ringSize() }
        let tableSize = top.setting("connection_table_size", default: Defaults.connectionTableSize) {
            $0.integer(in: Limits.connectionTableSize)
        }
        let maxVips = top.setting("max_vips", default: Defaults.maxVips) { $0.integer(in: Limits.maxVips) }
        let maxReals = top.setting("max_reals", default: Defaults.maxReals) { $0.integer(in: Limits.maxReals) }
        config.ringSize = ringSize ?? config.ringSize
        config.connectionTableSize = tableSize ?? config.connectionTableSize
        config.maxVips = maxVips ?? config.maxVips
        config.maxReals = maxReals ?? config.maxReals
        if let node = top.optional("mtu") { config.mtu = node.integer(in: Limits.mtu) }
        if let node = top.optional("syn_flood_threshold"), let threshold = node.integer(in: Limits.synFloodThreshold) {
            config.synFloodThreshold = threshold
        }
        if let node = top.optional("icmp") { readICMP(node, into: &config) }
        if let node = top.optional("pin_path"), let path = node.absolutePath() { config.pinPath = path }
        if let node = top.optional("admin") { readAdmin(node, into: &config) }
        let listenNode = top.optional("metrics")?.mapping(keys: Keys.metrics)?.optional("listen")
        config.metricsListen = listenNode?.loopbackEndpoint()
        if let node = top.optional("bgp") { config.bgp = readBGP(node) }

        if let ringSize, let maxVips, let node = top.optional("max_vips") ?? top.optional("ring_size") {
            checkRingMemory(ringSize: ringSize, maxVips: maxVips, at: node)
        }
        if let admin = config.adminTCP, admin == config.metricsListen {
            listenNode?.report("\(admin) is already the admin.tcp endpoint; use another port")
        }

        var healthDefault = HealthCheck.none
        if let node = top.optional("health_check"), let read = readHealthCheck(node, over: .none, topLevel: true) {
            healthDefault = read.check
            config.healthChecks.defaultCheck = read.check
            config.healthChecks.maxInFlight = read.maxInFlight ?? config.healthChecks.maxInFlight
        }

        let vipsNode = top.optional("vips")
        if let vipsNode, let entries = vipsNode.list() {
            let vips = entries.enumerated().map { readVip($0.element, index: $0.offset, root: root, ringSize: ringSize, healthDefault: healthDefault) }
            checkVips(vips, in: vipsNode, maxVips: maxVips, maxReals: maxReals)
            checkEncapsulation(vips, root: root)
            config.vips = vips.compactMap(\.vip)
            for entry in vips {
                guard let key = entry.key else { continue }
                if let check = entry.healthCheck { config.healthChecks.vipChecks[key] = check }
                if !entry.realChecks.isEmpty { config.healthChecks.realChecks[key] = entry.realChecks }
            }
        }
        return issues.isEmpty ? config : nil
    }

    // MARK: Sections

    private func readNextHop(_ node: ConfigNode) -> PetrelConfiguration.NextHop? {
        guard let nextHop = node.mapping(keys: Keys.nextHop) else { return nil }
        switch (nextHop.optional("mac"), nextHop.optional("gateway")) {
        case (let mac?, nil):
            return mac.macAddress().map { .mac($0) }
        case (nil, let gateway?):
            return gateway.hostAddress().map { .gateway($0) }
        case (_?, _?):
            node.report("must set exactly one of mac or gateway, not both")
        case (nil, nil):
            node.report("must set exactly one of mac (the router's MAC address) or gateway (its IP address); neither is set")
        }
        return nil
    }

    private func readICMP(_ node: ConfigNode, into config: inout PetrelConfiguration) {
        guard let icmp = node.mapping(keys: Keys.icmp) else { return }
        if let echo = icmp.optional("echo_reply")?.boolean() { config.icmpEchoReply = echo }
        if let tooBig = icmp.optional("too_big")?.boolean() { config.icmpTooBig = tooBig }
        if let limit = icmp.optional("rate_limit")?.integer(in: Limits.icmpRateLimit) { config.icmpRateLimit = limit }
    }

    private func readEncapsulation(_ node: ConfigNode, into config: inout PetrelConfiguration) {
        guard let encapsulation = node.mapping(keys: Keys.encapsulation) else { return }
        if let v4 = encapsulation.optional("source_v4")?.encapSource(of: .ipv4) { config.encapSourceV4 = v4 }
        if let v6 = encapsulation.optional("source_v6")?.encapSource(of: .ipv6) { config.encapSourceV6 = v6 }
        if let port = encapsulation.optional("gue_port")?.integer(Limits.guePort) { config.guePort = UInt16(port) }
    }

    private func readAdmin(_ node: ConfigNode, into config: inout PetrelConfiguration) {
        guard let admin = node.mapping(keys: Keys.admin) else { return }
        if let socket = admin.optional("socket")?.absolutePath(
            limit: Limits.unixSocketPathLength, purpose: " (the limit of a unix socket path)") {
            config.adminSocket = socket
        }
        config.adminTCP = admin.optional("tcp")?.loopbackEndpoint()
    }

    // MARK: VIPs and reals

    /// A VIP as read, with what the cross-VIP checks need even when parts of it are wrong.
    struct VipEntry {
        let node: ConfigNode
        var key: VipKey?
        var realAddresses: [IPAddress] = []
        /// Each real that could be read, with its index in the file.
        var reals: [(index: Int, real: Real)] = []
        /// The whole VIP, when every part of it is valid.
        var vip: Vip?
        /// The VIP's own health check, when it has a `health_check` section.
        var healthCheck: HealthCheck?
        /// Checks of reals with a `health_check` section of their own.
        var realChecks: [IPAddress: HealthCheck] = [:]
    }

    /// Reads a VIP's fields by type here; what they must be beyond their type is
    /// `Vip.validate`'s to say (the admin API and `LoadBalancer` run the same rules),
    /// and its issues are reported at the node their field path leads to.
    private func readVip(_ node: ConfigNode, index: Int, root: ConfigNode, ringSize: Int?, healthDefault: HealthCheck) -> VipEntry {
        var entry = VipEntry(node: node)
        let path: FieldPath = ["vips", .index(index)]
        guard let fields = node.mapping(keys: Keys.vip) else { return entry }
        let address = fields.required("address")?.ipAddress()
        let port = fields.required("port")?.integer(VipKey.portRule)
        let proto = fields.required("protocol")?.choice(of: L4Protocol.self)
        let flags = fields.setting("flags", default: VipFlags()) { readFlags($0) }

        // Each real that could be read, with its index in the file.
        var reals: [(index: Int, real: Real)] = []
        var allRealsRead = true
        if let realsNode = fields.optional("reals") {
            if let elements = realsNode.list() {
                for (realIndex, element) in elements.enumerated() {
                    if let real = readReal(element) { reals.append((realIndex, real)) } else { allRealsRead = false }
                }
            } else {
                allRealsRead = false
            }
        }
        entry.realAddresses = reals.map(\.real.address)
        entry.reals = reals
        let routes = fields.optional("source_routes").flatMap { readSourceRoutes($0) }

        guard let address else { return entry }
        let key = VipKey(address: address, port: UInt16(port ?? 0), proto: proto ?? .tcp)
        if port != nil, proto != nil { entry.key = key }
        if allRealsRead {
            let vip = Vip(key: key, flags: flags ?? [], reals: reals.map(\.real), sourceRoutes: routes ?? [])
            let found = vip.validate(at: path, ringSize: ringSize)
            for issue in found { root.report(issue) }
            let routesRead = routes != nil || fields.optional("source_routes") == nil
            if entry.key != nil, flags != nil, routesRead, found.isEmpty { entry.vip = vip }
        } else {
            // A real could not be read: check the rest on its own, each under its file index.
            if let issue = address.checkHost(at: path.appending("address")) { root.report(issue) }
            for (realIndex, real) in reals {
                for issue in real.validate(at: path.appending("reals").appending(realIndex), vipAddress: address) { root.report(issue) }
            }
        }
        if let key = entry.key { readHealthChecks(of: &entry, fields: fields, key: key, healthDefault: healthDefault) }
        return entry
    }

    /// The VIP's and its reals' `health_check` sections, each over the one above.
    private func readHealthChecks(of entry: inout VipEntry, fields: ConfigMapping, key: VipKey, healthDefault: HealthCheck) {
        var vipCheck = healthDefault
        if let node = fields.optional("health_check") {
            guard let read = readHealthCheck(node, over: healthDefault, topLevel: false) else { return }
            vipCheck = read.check
            entry.healthCheck = read.check
            guard checkProbePort(vipCheck, vip: key, at: node) else { return }
        } else if !checkProbePort(vipCheck, vip: key, at: entry.node) {
            return
        }
        for element in fields.optional("reals")?.list() ?? [] {
            guard let raw = element.node["health_check"], let address = element.node["address"]?.string.flatMap(IPAddress.init)
            else { continue }
            let node = element.child("health_check", raw)
            guard !node.isNull, let read = readHealthCheck(node, over: vipCheck, topLevel: false),
                  checkProbePort(read.check, vip: key, at: node) else { continue }
            entry.realChecks[address] = read.check
        }
    }

    private func readFlags(_ node: ConfigNode) -> VipFlags? {
        guard let elements = node.list() else { return nil }
        var flags: VipFlags? = []
        for element in elements {
            let name = element.string()
            if let name, let flag = VipFlags(named: name) {
                flags?.insert(flag)
            } else {
                if name != nil { element.report("unknown flag \(element.describe()); expected one of " + VipFlags.named.map(\.name).joined(separator: ", ")) }
                flags = nil
            }
        }
        // hash_destination_port_only with hash_without_source_port is redundant, not wrong: accepted.
        return flags
    }

    /// `source_routes: [{prefix: 10.0.0.0/8, real: 198.18.3.11}]`, by type; nil when one cannot be read.
    private func readSourceRoutes(_ node: ConfigNode) -> [SourceRoute]? {
        guard let elements = node.list() else { return nil }
        var routes: [SourceRoute]? = []
        for element in elements {
            guard let fields = element.mapping(keys: Keys.sourceRoute) else {
                routes = nil
                continue
            }
            let prefix = fields.required("prefix")?.ipPrefix()
            let real = fields.required("real")?.ipAddress()
            if let prefix, let real { routes?.append(SourceRoute(prefix: prefix, real: real)) } else { routes = nil }
        }
        return routes
    }

    /// A real's fields by type; nil when one cannot be read.
    private func readReal(_ node: ConfigNode) -> Real? {
        guard let fields = node.mapping(keys: Keys.real) else { return nil }
        let address = fields.required("address")?.ipAddress()
        let weight = fields.setting("weight", default: Int(Real.defaultWeight)) { $0.integer(Real.weightRule) }
        let encapsulation = fields.setting("encapsulation", default: Encapsulation.ipip) { $0.choice(of: Encapsulation.self) }
        let serverIdNode = fields.optional("quic_server_id")
        let serverId = serverIdNode?.integer(Real.quicServerIdRule)
        guard let address, let weight, let encapsulation, serverIdNode == nil || serverId != nil else { return nil }
        return Real(address: address, weight: UInt32(weight), encapsulation: encapsulation, quicServerId: serverId.map { UInt16($0) })
    }

    // MARK: Checks across fields

    private func checkRingMemory(ringSize: Int, maxVips: Int, at node: ConfigNode) {
        let slots = ringSize * maxVips
        guard slots > Limits.totalRingSlots else { return }
        // Two rows per VIP (a changed ring is written beside the old one), 4 bytes a slot.
        let gib = Double(slots) * 2 * 4 / Double(1 << 30)
        node.report("max_vips × ring_size is \(maxVips) × \(ringSize) = \(slots) ring slots, "
            + "about \(Int(gib.rounded())) GiB of ring memory; the limit is \(Limits.totalRingSlots) slots (8 GiB): "
            + "lower max_vips or ring_size")
    }

    private func checkVips(_ vips: [VipEntry], in node: ConfigNode, maxVips: Int?, maxReals: Int?) {
        if let maxVips, vips.count > maxVips {
            node.report("lists \(vips.count) VIPs but max_vips is \(maxVips); raise max_vips or remove VIPs")
        }

        var firstByKey: [VipKey: VipEntry] = [:]
        for entry in vips {
            guard let key = entry.key else { continue }
            if let first = firstByKey[key] {
                entry.node.report("duplicate VIP \(key): the same address, port and protocol as \(first.node.field) "
                    + "on line \(first.node.line)")
            } else {
                firstByKey[key] = entry
            }
        }

        let distinctReals = Set(vips.flatMap(\.realAddresses)).count
        if let maxReals, distinctReals > maxReals - 1 {
            node.report("the VIPs use \(distinctReals) distinct real addresses but max_reals \(maxReals) "
                + "leaves room for \(maxReals - 1) (real id 0 is reserved); raise max_reals")
        }
    }

    /// A real is reached one way (IP-in-IP or GUE) by every VIP that lists it.
    private func checkEncapsulation(_ vips: [VipEntry], root: ConfigNode) {
        var first: [IPAddress: (Encapsulation, FieldPath)] = [:]
        for (index, entry) in vips.enumerated() {
            for (realIndex, real) in entry.reals {
                let path: FieldPath = ["vips", .index(index), "reals", .index(realIndex), "encapsulation"]
                if let (other, otherPath) = first[real.address] {
                    if other != real.encapsulation {
                        root.report(Real.encapsulationConflict(at: path, value: real.encapsulation, other: other, otherField: "\(otherPath)"))
                    }
                } else {
                    first[real.address] = (real.encapsulation, path)
                }
            }
        }
    }
}
