import Petrel
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
            "max_vips", "max_reals", "mtu", "pin_path", "admin", "metrics", "vips",
        ]
        static let nextHop = ["mac", "gateway"]
        static let encapsulation = ["source_v4", "source_v6"]
        static let admin = ["socket", "tcp"]
        static let metrics = ["listen"]
        static let vip = ["address", "port", "protocol", "flags", "reals"]
        static let real = ["address", "weight"]
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

        var config = PetrelConfiguration(interface: "", nextHop: .mac([]))
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
        if let node = top.optional("pin_path"), let path = node.absolutePath() { config.pinPath = path }
        if let node = top.optional("admin") { readAdmin(node, into: &config) }
        let listenNode = top.optional("metrics")?.mapping(keys: Keys.metrics)?.optional("listen")
        config.metricsListen = listenNode?.loopbackEndpoint()

        if let ringSize, let maxVips, let node = top.optional("max_vips") ?? top.optional("ring_size") {
            checkRingMemory(ringSize: ringSize, maxVips: maxVips, at: node)
        }
        if let admin = config.adminTCP, admin == config.metricsListen {
            listenNode?.report("\(admin) is already the admin.tcp endpoint; use another port")
        }

        let vipsNode = top.optional("vips")
        if let vipsNode, let entries = vipsNode.list() {
            let vips = entries.map(readVip)
            checkVips(vips, in: vipsNode, ringSize: ringSize, maxVips: maxVips, maxReals: maxReals)
            config.vips = vips.compactMap(\.vip)
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

    private func readEncapsulation(_ node: ConfigNode, into config: inout PetrelConfiguration) {
        guard let encapsulation = node.mapping(keys: Keys.encapsulation) else { return }
        if let v4 = encapsulation.optional("source_v4")?.prefix(of: .ipv4, length: 16) { config.encapSourceV4 = v4 }
        if let v6 = encapsulation.optional("source_v6")?.prefix(of: .ipv6, length: 64) { config.encapSourceV6 = v6 }
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
        /// The reals list, when it was given as a list.
        var realsNode: ConfigNode?
        var realCount = 0
        var realAddresses: [IPAddress] = []
        /// The whole VIP, when every part of it is valid.
        var vip: Vip?
    }

    private func readVip(_ node: ConfigNode) -> VipEntry {
        var entry = VipEntry(node: node)
        guard let fields = node.mapping(keys: Keys.vip) else { return entry }
        let address = fields.required("address")?.hostAddress()
        let port = fields.required("port")?.integer(in: Limits.port)
        let proto = fields.required("protocol")?.choice(of: L4Protocol.self)
        let flags = fields.setting("flags", default: VipFlags()) { readFlags($0) }

        var reals: [Real]? = []
        if let realsNode = fields.optional("reals") {
            entry.realsNode = realsNode
            let elements = realsNode.list()
            if elements == nil { reals = nil }
            entry.realCount = elements?.count ?? 0
            var firstUse: [IPAddress: ConfigNode] = [:]
            for element in elements ?? [] {
                guard let real = readReal(element, vipAddress: address) else {
                    reals = nil
                    continue
                }
                if let first = firstUse[real.address] {
                    element.child("address", element.node["address"] ?? element.node).report(
                        "\(real.address) is listed twice in this VIP; the first is \(first.field) on line \(first.line)")
                    reals = nil
                    continue
                }
                firstUse[real.address] = element
                entry.realAddresses.append(real.address)
                reals?.append(real)
            }
        }

        if let address, let port, let proto {
            let key = VipKey(address: address, port: UInt16(port), proto: proto)
            entry.key = key
            if let flags, let reals { entry.vip = Vip(key: key, flags: flags, reals: reals) }
        }
        return entry
    }

    private func readFlags(_ node: ConfigNode) -> VipFlags? {
        guard let elements = node.list() else { return nil }
        var flags: VipFlags? = []
        for element in elements {
            let name = element.string()
            if let match = VipFlags.named.first(where: { $0.name == name }) {
                flags?.insert(match.flag)
            } else {
                if name != nil {
                    element.report("unknown flag \(element.describe()); expected one of "
                        + VipFlags.named.map(\.name).joined(separator: ", "))
                }
                flags = nil
            }
        }
        // hash_destination_port_only with hash_without_source_port is redundant, not wrong: accepted.
        return flags
    }

    private func readReal(_ node: ConfigNode, vipAddress: IPAddress?) -> Real? {
        guard let fields = node.mapping(keys: Keys.real) else { return nil }
        let addressNode = fields.required("address")
        let address = addressNode?.hostAddress()
        let weight = fields.setting("weight", default: Int(Defaults.weight)) { $0.integer(in: Limits.weight) }
        if let address, let addressNode, let vipAddress, vipAddress.family == .ipv6, address.family == .ipv4 {
            addressNode.report("is IPv4 but the VIP \(vipAddress) is IPv6; IPv6 packets cannot travel inside IPv4, "
                + "so an IPv6 VIP needs IPv6 reals")
            return nil
        }
        guard let address, let weight else { return nil }
        return Real(address: address, weight: UInt32(weight))
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

    private func checkVips(_ vips: [VipEntry], in node: ConfigNode, ringSize: Int?, maxVips: Int?, maxReals: Int?) {
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

        if let ringSize {
            for entry in vips where entry.realCount >= ringSize {
                (entry.realsNode ?? entry.node).report("has \(entry.realCount) reals but ring_size is \(ringSize); "
                    + "ring_size must be larger than the number of reals of every VIP")
            }
        }

        let distinctReals = Set(vips.flatMap(\.realAddresses)).count
        if let maxReals, distinctReals > maxReals - 1 {
            node.report("the VIPs use \(distinctReals) distinct real addresses but max_reals \(maxReals) "
                + "leaves room for \(maxReals - 1) (real id 0 is reserved); raise max_reals")
        }
    }
}
