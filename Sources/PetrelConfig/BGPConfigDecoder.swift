import Petrel

// Reads the `bgp` section (BGPConfiguration). Every problem is reported with its
// field path, like the rest of the file.

extension ConfigDecoder {
    enum BGPKeys {
        static let bgp = [
            "local_asn", "router_id", "hold_time", "keepalive_time", "connect_retry_time", "drain_time",
            "communities", "med", "neighbors", "bird",
        ]
        static let neighbor = ["address", "asn", "next_hop"]
        static let bird = ["binary", "control_socket", "config_file"]
    }

    func readBGP(_ node: ConfigNode) -> BGPConfiguration? {
        typealias Limits = BGPConfiguration.Limits
        typealias Defaults = BGPConfiguration.Defaults
        guard let bgp = node.mapping(keys: BGPKeys.bgp) else { return nil }
        let localASN = bgp.required("local_asn")?.asn()
        let routerID = bgp.required("router_id")?.routerID()
        let hold = bgp.setting("hold_time", default: Defaults.holdTime) { $0.integer(in: Limits.holdTime) }
        let keepaliveNode = bgp.optional("keepalive_time")
        var keepalive = keepaliveNode?.integer(in: Limits.keepaliveTime)
        if let hold, let given = keepalive, let keepaliveNode, given > hold / 3 {
            keepaliveNode.report("must be at most a third of hold_time (\(hold) s), so that two keepalives can be lost "
                + "before the session drops; got \(given)")
            keepalive = nil
        }
        let retry = bgp.setting("connect_retry_time", default: Defaults.connectRetryTime) { $0.integer(in: Limits.connectRetryTime) }
        let drain = bgp.setting("drain_time", default: Defaults.drainTime) { $0.integer(in: Limits.drainTime) }
        let communities = bgp.setting("communities", default: []) { node -> [BGPConfiguration.Community]? in
            guard let elements = node.list() else { return nil }
            let read = elements.map { $0.community() }
            return read.contains { $0 == nil } ? nil : read.compactMap { $0 }
        }
        let med = bgp.optional("med").map { $0.integer(in: Limits.med) }
        let neighbors = bgp.required("neighbors").flatMap(readNeighbors)
        let bird = bgp.setting("bird", default: BGPConfiguration.Bird()) { readBird($0) }

        guard let localASN, let routerID, let hold, let retry, let drain, let communities, let neighbors, let bird,
              keepaliveNode == nil || keepalive != nil, med.map({ $0 != nil }) ?? true
        else { return nil }
        return BGPConfiguration(localASN: localASN, routerID: routerID, neighbors: neighbors, holdTime: hold,
                                keepaliveTime: keepalive, connectRetryTime: retry, drainTime: drain,
                                communities: communities, med: med.flatMap { $0 }.map(UInt32.init), bird: bird)
    }

    private func readNeighbors(_ node: ConfigNode) -> [BGPConfiguration.Neighbor]? {
        guard let elements = node.list() else { return nil }
        if elements.isEmpty {
            node.report("must list at least one neighbor (the routers that learn the VIP addresses)")
            return nil
        }
        if elements.count > BGPConfiguration.Limits.maxNeighbors {
            node.report("lists \(elements.count) neighbors; at most \(BGPConfiguration.Limits.maxNeighbors) are supported")
            return nil
        }
        var neighbors: [BGPConfiguration.Neighbor]? = []
        var firstUse: [IPAddress: ConfigNode] = [:]
        for element in elements {
            guard let fields = element.mapping(keys: BGPKeys.neighbor) else {
                neighbors = nil
                continue
            }
            let addressNode = fields.required("address")
            let address = addressNode?.hostAddress()
            let asn = fields.required("asn")?.asn()
            let nextHopNode = fields.optional("next_hop")
            var nextHop = nextHopNode?.hostAddress()
            if let address, let hop = nextHop, let nextHopNode, hop.family != address.family {
                nextHopNode.report("must be of the neighbor's family (\(address) is \(address.family == .ipv4 ? "IPv4" : "IPv6")); "
                    + "a neighbor carries the VIP addresses of its own family only, got \(hop)")
                nextHop = nil
            }
            if let address, let addressNode, let first = firstUse[address] {
                addressNode.report("\(address) is listed twice; the first is \(first.field) on line \(first.line)")
                neighbors = nil
                continue
            }
            if let address, let addressNode { firstUse[address] = addressNode }
            guard let address, let asn, nextHopNode == nil || nextHop != nil else {
                neighbors = nil
                continue
            }
            neighbors?.append(BGPConfiguration.Neighbor(address: address, asn: asn, nextHop: nextHop))
        }
        return neighbors
    }

    private func readBird(_ node: ConfigNode) -> BGPConfiguration.Bird? {
        guard let fields = node.mapping(keys: BGPKeys.bird) else { return nil }
        var bird = BGPConfiguration.Bird()
        var valid = true
        func path(_ key: String, limit: Int? = nil, _ store: (String) -> Void) {
            guard let node = fields.optional(key) else { return }
            if let value = node.absolutePath(limit: limit, purpose: limit == nil ? "" : " (the limit of a unix socket path)") {
                store(value)
            } else {
                valid = false
            }
        }
        path("binary") { bird.binary = $0 }
        path("control_socket", limit: PetrelConfiguration.Limits.unixSocketPathLength) { bird.controlSocket = $0 }
        path("config_file") { bird.configFile = $0 }
        return valid ? bird : nil
    }
}

extension ConfigNode {
    /// An AS number a BGP speaker may own: 1...4294967294 except AS_TRANS (23456).
    func asn() -> UInt32? {
        guard let value = integer(in: BGPConfiguration.Limits.asn) else { return nil }
        if value == BGPConfiguration.Limits.asTrans {
            report("must not be 23456 (AS_TRANS, which stands in for 4-byte AS numbers on old speakers)")
            return nil
        }
        return UInt32(value)
    }

    /// A BGP identifier: a non-zero IPv4 address.
    func routerID() -> IPAddress? {
        guard let address = ipAddress() else { return nil }
        guard address.family == .ipv4 else {
            report("must be an IPv4 address (a BGP identifier is 32 bits, even on an IPv6-only host), got \(address)")
            return nil
        }
        guard address.bytes.contains(where: { $0 != 0 }) else {
            report("must not be 0.0.0.0")
            return nil
        }
        return address
    }

    /// `65000:100`: a standard community, two numbers 0...65535.
    func community() -> BGPConfiguration.Community? {
        guard let text = string() else { return nil }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let range = BGPConfiguration.Limits.communityHalf
        guard parts.count == 2, let high = Int(parts[0]), let low = Int(parts[1]), range.contains(high), range.contains(low),
              parts.allSatisfy({ $0.allSatisfy(\.isNumber) })
        else {
            report("must be a standard community ASN:value with both numbers 0...65535, like \"65000:100\"; got \(describe())")
            return nil
        }
        return BGPConfiguration.Community(asn: UInt16(high), value: UInt16(low))
    }
}
