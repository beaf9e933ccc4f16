// The rules a VIP and its reals must follow, defined once. The config file, the
// admin API and `LoadBalancer` all run these; each front end only turns the field
// paths into its own terms (file:line:col, a JSON path, a thrown PetrelError).

// MARK: - Where a problem is

/// A field's place in a document: `vips[2].reals[0].address`.
public struct FieldPath: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    public enum Component: Hashable, Sendable, ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
        case key(String)
        case index(Int)

        public init(stringLiteral value: String) { self = .key(value) }
        public init(integerLiteral value: Int) { self = .index(value) }
    }

    public var components: [Component]

    public init(_ components: [Component] = []) { self.components = components }
    public init(arrayLiteral elements: Component...) { components = elements }

    /// The path of the document itself.
    public static let root = FieldPath()

    public func appending(_ key: String) -> FieldPath { FieldPath(components + [.key(key)]) }
    public func appending(_ index: Int) -> FieldPath { FieldPath(components + [.index(index)]) }
    public func appending(_ other: FieldPath) -> FieldPath { FieldPath(components + other.components) }

    public var isRoot: Bool { components.isEmpty }

    /// `vips[2].reals[0].address`; empty for the document itself.
    public var description: String {
        var text = ""
        for component in components {
            switch component {
            case .key(let key): text += text.isEmpty ? key : ".\(key)"
            case .index(let index): text += "[\(index)]"
            }
        }
        return text
    }
}

// MARK: - What is wrong there

/// One refused value: where it is, what it was, and what was expected.
public struct ValidationIssue: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: FieldPath
    /// The value as the operator wrote it; nil when there is nothing to show (a missing or unknown field).
    public var value: String?
    /// What the value must be, in the operator's words: `must be between 0 and 1000000`.
    public var expected: String

    public init(_ path: FieldPath, value: String?, expected: String) {
        self.path = path
        self.value = value
        self.expected = expected
    }

    /// The message without the path: `must be between 0 and 1000000, got 2000000`.
    public var message: String { value.map { "\(expected), got \($0)" } ?? expected }

    /// `vips[0].reals[1].weight: must be between 0 and 1000000, got 2000000`.
    public var description: String { path.isRoot ? message : "\(path): \(message)" }

    /// The same problem found inside a larger document, under `prefix`.
    public func under(_ prefix: FieldPath) -> ValidationIssue {
        ValidationIssue(prefix.appending(path), value: value, expected: expected)
    }
}

extension PetrelError {
    /// The first issue as a thrown error (nothing was written).
    public init(_ issue: ValidationIssue) {
        self = .invalid(field: issue.path.description, value: issue.value ?? "", expected: issue.expected)
    }
}

// MARK: - Numbers

/// An integer setting's allowed range, with the words every front end uses for it.
public struct IntegerRule: Sendable {
    public let range: ClosedRange<Int>
    /// Added after the range in messages, like ` (0: every port)`.
    public let note: String

    public init(_ range: ClosedRange<Int>, note: String = "") {
        self.range = range
        self.note = note
    }

    /// `must be between 0 and 1000000`.
    public var expected: String { "must be between \(range.lowerBound) and \(range.upperBound)\(note)" }
    /// For a value that is not a number at all: `must be an integer between 0 and 1000000`.
    public var expectedInteger: String { "must be an integer between \(range.lowerBound) and \(range.upperBound)\(note)" }

    /// `path` is built only for an issue (here and in every check below): a config
    /// of a million reals would otherwise build millions of paths that pass.
    public func check(_ value: Int, at path: @autoclosure () -> FieldPath) -> ValidationIssue? {
        range.contains(value) ? nil : ValidationIssue(path(), value: "\(value)", expected: expected)
    }
}

extension Real {
    /// The largest weight accepted; weights are relative, so this only bounds arithmetic.
    public static let maxWeight: UInt32 = 1_000_000
    /// A real's weight: 0 (drained) to `maxWeight`.
    public static let weightRule = IntegerRule(0...Int(maxWeight))
    /// The weight of a real that gives none.
    public static let defaultWeight: UInt32 = 1
}

extension VipKey {
    /// A VIP's port; 0 serves every port of the address.
    public static let portRule = IntegerRule(0...65_535, note: " (0: every port)")
}

// MARK: - Addresses

extension IPAddress {
    /// Why this address cannot be a VIP, a real or a gateway; nil when it can.
    ///
    /// Refused: the unspecified address (`0.0.0.0`, `::`), loopback (`127.0.0.0/8`,
    /// `::1`: never on the wire, so never a VIP a client reaches nor a real a
    /// tunnel reaches), multicast (`224.0.0.0/4`, `ff00::/8`), the IPv4 broadcast
    /// address and the rest of `240.0.0.0/4` (reserved).
    public var hostAddressProblem: String? {
        if high == 0 && low == 0 { return "unspecified" }
        switch family {
        case .ipv4:
            let first = ipv4Value >> 24
            if first == 127 { return "loopback" }
            if first >= 224 && first <= 239 { return "multicast" }
            if ipv4Value == .max { return "broadcast" }
            if first >= 240 { return "reserved" }
        case .ipv6:
            if high >> 56 == 0xff { return "multicast" }
            if high == 0 && low == 1 { return "loopback" }
        }
        return nil
    }

    /// The rule for VIP, real and gateway addresses (see `hostAddressProblem`).
    public func checkHost(at path: @autoclosure () -> FieldPath) -> ValidationIssue? {
        hostAddressProblem.map { ValidationIssue(path(), value: "\(self) (\($0))", expected: "must be a unicast host address") }
    }
}

// MARK: - VIPs and reals

extension VipFlags {
    /// The rule for flags given as bits: only the data plane's PETREL_VIP_* bits.
    public func check(at path: @autoclosure () -> FieldPath) -> ValidationIssue? {
        let unknown = rawValue & ~VipFlags.known.rawValue
        guard unknown != 0 else { return nil }
        return ValidationIssue(path(), value: "0x\(String(unknown, radix: 16))",
                               expected: "must be known flags (\(VipFlags.named.map(\.name).joined(separator: ", ")))")
    }

    /// The flag called `name` in the config file and the API.
    public init?(named name: String) {
        guard let match = VipFlags.named.first(where: { $0.name == name }) else { return nil }
        self = match.flag
    }

    /// The words for a flag name that is none of the known ones.
    public static var expectedName: String { "must be one of \(named.map(\.name).joined(separator: ", "))" }
}

extension Real {
    /// Checks the real on its own, as a real of a VIP at `vipAddress`; `path` is the real's.
    public func validate(at path: @autoclosure () -> FieldPath, vipAddress: IPAddress) -> [ValidationIssue] {
        var issues: [ValidationIssue] = []
        if let issue = address.checkHost(at: path().appending("address")) {
            issues.append(issue)
        } else if vipAddress.family == .ipv6 && address.family == .ipv4 {
            issues.append(ValidationIssue(path().appending("address"), value: "\(address)",
                                          expected: "must be IPv6 for the IPv6 VIP \(vipAddress) (IPv6 packets cannot travel inside IPv4)"))
        }
        if let issue = Real.weightRule.check(Int(weight), at: path().appending("weight")) { issues.append(issue) }
        if let id = quicServerId, !QuicConnectionID.serverIds.contains(id) {
            issues.append(ValidationIssue(path().appending("quic_server_id"), value: "\(id)", expected: Real.quicServerIdRule.expected + " (0 means no id)"))
        }
        return issues
    }

    /// A QUIC server id: 16 bits, 0 reserved for "none" (Petrel CID format v1).
    public static let quicServerIdRule = IntegerRule(1...65_535)
}

extension Vip {
    /// Every rule of one VIP: its address, its flags, each real, no real listed
    /// twice, and (given `ringSize`) fewer reals than ring slots. `path` is the
    /// VIP's own (`vips[2]` in a list, the root for a single VIP).
    public func validate(at path: FieldPath = .root, ringSize: Int? = nil) -> [ValidationIssue] {
        var issues: [ValidationIssue] = []
        if let issue = key.address.checkHost(at: path.appending("address")) { issues.append(issue) }
        if let issue = flags.check(at: path.appending("flags")) { issues.append(issue) }
        var firstIndex: [IPAddress: Int] = [:]
        for (index, real) in reals.enumerated() {
            func realPath() -> FieldPath { path.appending("reals").appending(index) }
            issues += real.validate(at: realPath(), vipAddress: key.address)
            if let first = firstIndex[real.address] {
                issues.append(ValidationIssue(realPath().appending("address"), value: "\(real.address)",
                                              expected: "must not repeat a real of this VIP (it is reals[\(first)] too)"))
            } else {
                firstIndex[real.address] = index
            }
        }
        issues += validateQuic(at: path)
        issues += validateSourceRoutes(at: path)
        if let ringSize, reals.count >= ringSize {
            issues.append(ValidationIssue(path.appending("reals"), value: "\(reals.count) reals",
                                          expected: "must be fewer than ring_size (\(ringSize)) reals"))
        }
        return issues
    }
}

extension Vip {
    /// The `quic` flag needs UDP, and then every real a server id, unique in the
    /// VIP; without the flag no real has one. A real without an id on a QUIC VIP
    /// would issue connection IDs that might name another real.
    func validateQuic(at path: FieldPath) -> [ValidationIssue] {
        var issues: [ValidationIssue] = []
        let quic = flags.contains(.quic)
        if quic && key.proto != .udp {
            issues.append(ValidationIssue(path.appending("flags"), value: "quic on \(key.proto.rawValue)",
                                          expected: "needs protocol udp (QUIC runs over UDP)"))
        }
        var firstIndex: [UInt16: Int] = [:]
        for (index, real) in reals.enumerated() {
            func idPath() -> FieldPath { path.appending("reals").appending(index).appending("quic_server_id") }
            switch (quic, real.quicServerId) {
            case (false, let id?):
                issues.append(ValidationIssue(idPath(), value: "\(id)", expected: "is only used on a VIP with the quic flag"))
            case (true, nil):
                issues.append(ValidationIssue(idPath(), value: nil,
                                              expected: "must be set on every real of a quic VIP (\(Real.quicServerIdRule.expected))"))
            case (true, let id?):
                if let first = firstIndex[id] {
                    issues.append(ValidationIssue(idPath(), value: "\(id)", expected: "must be unique in the VIP (reals[\(first)] has it too)"))
                } else {
                    firstIndex[id] = index
                }
            case (false, nil):
                break
            }
        }
        return issues
    }
}

extension Vip {
    /// Source routes: each prefix of the VIP's family (its clients'), no bits after
    /// its length (refused, not silently cleared: `10.1.2.3/8` is likely a typo),
    /// listed once; each real one of the VIP's reals; at most `SourceRoute.maxCount`.
    /// Overlapping prefixes are fine: the longest wins.
    func validateSourceRoutes(at path: FieldPath) -> [ValidationIssue] {
        guard !sourceRoutes.isEmpty else { return [] }
        var issues: [ValidationIssue] = []
        let routesPath = path.appending("source_routes")
        if sourceRoutes.count > SourceRoute.maxCount {
            issues.append(ValidationIssue(routesPath, value: "\(sourceRoutes.count) routes",
                                          expected: "must be at most \(SourceRoute.maxCount) routes (the data plane's limit, all VIPs together)"))
        }
        let realAddresses = Set(reals.map(\.address))
        var firstIndex: [IPPrefix: Int] = [:]
        for (index, route) in sourceRoutes.enumerated() {
            let routePath = routesPath.appending(index)
            let prefix = route.prefix
            let family = key.address.family
            if prefix.address.family != family {
                issues.append(ValidationIssue(routePath.appending("prefix"), value: "\(prefix)",
                                              expected: "must be an \(family == .ipv4 ? "IPv4" : "IPv6") prefix like the VIP \(key.address) (its clients' addresses)"))
            } else if prefix.length < 0 || prefix.length > prefix.maxLength {
                issues.append(ValidationIssue(routePath.appending("prefix"), value: "\(prefix)",
                                              expected: "must have a length between 0 and \(prefix.maxLength)"))
            } else if prefix.network != prefix {
                issues.append(ValidationIssue(routePath.appending("prefix"), value: "\(prefix)",
                                              expected: "must have no address bits set after its length (\(prefix.network)?)"))
            } else if let first = firstIndex[prefix] {
                issues.append(ValidationIssue(routePath.appending("prefix"), value: "\(prefix)",
                                              expected: "must not repeat a prefix of this VIP (it is source_routes[\(first)] too)"))
            } else {
                firstIndex[prefix] = index
            }
            if !realAddresses.contains(route.real) {
                issues.append(ValidationIssue(routePath.appending("real"), value: "\(route.real)",
                                              expected: "must be one of this VIP's reals"
                                                + (reals.isEmpty ? " (it has none)" : reals.count > 8 ? "" : " (\(reals.map { "\($0.address)" }.joined(separator: ", ")))")))
            }
        }
        return issues
    }
}

extension Array where Element == Vip {
    /// Every rule of a list of VIPs (`path` is the list's, `vips` in a file):
    /// each VIP's own rules, no VIP listed twice, and each real reached the same
    /// way (IP-in-IP or GUE) by every VIP that lists it.
    public func validate(at path: FieldPath = ["vips"], ringSize: Int? = nil) -> [ValidationIssue] {
        var issues: [ValidationIssue] = []
        var firstIndex: [VipKey: Int] = [:]
        var encapsulation: [IPAddress: (Encapsulation, vip: Int, real: Int)] = [:]
        func encapsulationPath(_ vip: Int, _ real: Int) -> FieldPath {
            path.appending(vip).appending("reals").appending(real).appending("encapsulation")
        }
        for (index, vip) in enumerated() {
            issues += vip.validate(at: path.appending(index), ringSize: ringSize)
            if let issue = Vip.duplicate(vip.key, at: path.appending(index), first: &firstIndex, index: index, list: path) {
                issues.append(issue)
            }
            for (r, real) in vip.reals.enumerated() {
                if let (other, otherVip, otherReal) = encapsulation[real.address] {
                    if other != real.encapsulation {
                        issues.append(Real.encapsulationConflict(at: encapsulationPath(index, r), value: real.encapsulation, other: other,
                                                                 otherField: "\(encapsulationPath(otherVip, otherReal))"))
                    }
                } else {
                    encapsulation[real.address] = (real.encapsulation, index, r)
                }
            }
        }
        return issues
    }
}

extension Real {
    /// A real is one entry in the data plane, so one way of reaching it.
    public static func encapsulationConflict(at path: FieldPath, value: Encapsulation, other: Encapsulation, otherField: String) -> ValidationIssue {
        ValidationIssue(path, value: value.rawValue,
                        expected: "must match \(otherField) (\(other.rawValue)): a real is reached the same way by every VIP that lists it")
    }
}

extension Vip {
    /// The rule that a list names each VIP (address, port, protocol) once.
    static func duplicate(_ key: VipKey, at path: FieldPath, first: inout [VipKey: Int], index: Int,
                          list: FieldPath) -> ValidationIssue? {
        if let earlier = first[key] {
            return ValidationIssue(path, value: "\(key)",
                                   expected: "must be listed once (the same address, port and protocol as \(list.appending(earlier)))")
        }
        first[key] = index
        return nil
    }
}
