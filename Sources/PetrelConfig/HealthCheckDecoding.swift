import Petrel
import PetrelHealth

// The `health_check` sections: one at the top (the default for every VIP), one
// per VIP and one per real, each read over the one above it, so a VIP or real
// states only what differs. Documented in config/README.md.

extension ConfigDecoder {
    enum HealthKeys {
        static let check = ["type", "port", "interval", "timeout", "rise", "fall", "path", "expect_status", "host", "payload"]
        static let topLevel = check + ["max_in_flight"]
        static let types = ["none", "tcp", "http", "udp"]
    }

    /// Reads a `health_check` mapping over `base`; nil when anything in it is wrong.
    /// `maxInFlight` is read only at the top level.
    func readHealthCheck(_ node: ConfigNode, over base: HealthCheck, topLevel: Bool) -> (check: HealthCheck, maxInFlight: Int?)? {
        guard let fields = node.mapping(keys: topLevel ? HealthKeys.topLevel : HealthKeys.check) else { return nil }
        var check = base
        var valid = true
        func take<T>(_ value: T?, _ apply: (T) -> Void) {
            if let value { apply(value) } else { valid = false }
        }

        if let typeNode = fields.optional("type") {
            take(typeNode.healthCheckType()) { name in
                switch (name, base.kind) {
                case ("none", _): check.kind = .none
                case ("tcp", _): check.kind = .tcp
                case ("http", .http): break
                case ("http", _): check.kind = .http(HealthCheck.HTTP())
                case ("udp", .udp): break
                default: check.kind = .udp(HealthCheck.UDP())
                }
            }
        }
        if let portNode = fields.optional("port") {
            take(portNode.integer(in: PetrelConfiguration.Limits.listenPort)) { check.port = UInt16($0) }
        }
        if let node = fields.optional("interval") {
            take(node.milliseconds(in: HealthCheck.Limits.intervalMilliseconds)) { check.intervalMilliseconds = $0 }
        }
        if let node = fields.optional("timeout") {
            take(node.milliseconds(in: HealthCheck.Limits.timeoutMilliseconds)) { check.timeoutMilliseconds = $0 }
        }
        if let node = fields.optional("rise") { take(node.integer(in: HealthCheck.Limits.rise)) { check.rise = $0 } }
        if let node = fields.optional("fall") { take(node.integer(in: HealthCheck.Limits.fall)) { check.fall = $0 } }

        // Settings of one type only.
        for key in ["path", "expect_status", "host"] {
            guard let node = fields.optional(key) else { continue }
            guard case .http(var http) = check.kind else {
                node.report("applies to type http only; this check is \(check.kind.name)")
                valid = false
                continue
            }
            switch key {
            case "path": take(node.httpPath()) { http.path = $0 }
            case "expect_status": take(node.httpStatusList()) { http.expectedStatus = $0 }
            default: take(node.httpHost()) { http.host = $0 }
            }
            check.kind = .http(http)
        }
        if let node = fields.optional("payload") {
            if case .udp = check.kind {
                take(node.udpPayload()) { check.kind = .udp(HealthCheck.UDP(payload: $0)) }
            } else {
                node.report("applies to type udp only; this check is \(check.kind.name)")
                valid = false
            }
        }

        if valid, check.isEnabled, check.timeoutMilliseconds > check.intervalMilliseconds {
            (fields.optional("timeout") ?? fields.optional("interval") ?? node).report(
                "timeout \(check.timeoutMilliseconds) ms is longer than interval \(check.intervalMilliseconds) ms; "
                    + "a probe must end before the next one starts")
            valid = false
        }
        var maxInFlight: Int?
        if topLevel, let node = fields.optional("max_in_flight") {
            maxInFlight = node.integer(in: HealthCheck.Limits.maxInFlight)
            if maxInFlight == nil { valid = false }
        }
        return valid ? (check, maxInFlight) : nil
    }

    /// A VIP on every port has no port to probe unless its check names one.
    func checkProbePort(_ check: HealthCheck, vip key: VipKey, at node: ConfigNode) -> Bool {
        guard check.isEnabled, check.port == nil, key.port == 0 else { return true }
        node.report("this VIP takes every port (port 0), so its \(check.kind.name) health check needs a port: "
            + "add health_check.port")
        return false
    }
}

extension ConfigNode {
    func healthCheckType() -> String? {
        guard let name = string() else { return nil }
        guard ConfigDecoder.HealthKeys.types.contains(name) else {
            report("must be one of \(ConfigDecoder.HealthKeys.types.joined(separator: ", ")), got \(describe())")
            return nil
        }
        return name
    }

    /// A duration such as `2s`, `1.5s` or `500ms`, in milliseconds within `range`.
    func milliseconds(in range: ClosedRange<Int>) -> Int? {
        let expected = "must be a duration such as 2s, 1.5s or 500ms, between \(range.lowerBound) ms and \(range.upperBound / 1000) s"
        guard case .scalar(let scalar) = node else {
            report("\(expected), got \(describe())")
            return nil
        }
        let text = scalar.string.trimmingCharacters(in: .whitespaces)
        var value: Double?
        if text.hasSuffix("ms") {
            value = Double(text.dropLast(2))
        } else if text.hasSuffix("s") {
            value = Double(text.dropLast()).map { $0 * 1000 }
        }
        guard let value, value.isFinite, value == value.rounded(), range.contains(Int(value)) else {
            report("\(expected), got \(describe())")
            return nil
        }
        return Int(value)
    }

    func httpPath() -> String? {
        guard let path = string() else { return nil }
        let limit = HealthCheck.Limits.httpPathLength
        guard path.hasPrefix("/"), limit.contains(path.utf8.count),
              path.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
            report("must be a URL path starting with / (at most \(limit.upperBound) bytes, printable ASCII, no spaces), got \(describe())")
            return nil
        }
        return path
    }

    func httpHost() -> String? {
        guard let host = string() else { return nil }
        guard !host.isEmpty, host.utf8.count <= 255, host.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
            report("must be a Host header value (1 to 255 printable ASCII characters, no spaces), got \(describe())")
            return nil
        }
        return host
    }

    /// `[200, 204]` or a single `200`.
    func httpStatusList() -> [Int]? {
        let range = HealthCheck.Limits.httpStatus
        if case .scalar = node { return integer(in: range).map { [$0] } }
        guard let elements = list() else { return nil }
        guard !elements.isEmpty else {
            report("must list at least one HTTP status code, like [200]")
            return nil
        }
        let codes = elements.map { $0.integer(in: range) }
        return codes.contains(where: { $0 == nil }) ? nil : codes.compactMap { $0 }
    }

    func udpPayload() -> [UInt8]? {
        guard let text = string() else { return nil }
        let limit = HealthCheck.Limits.udpPayloadLength
        guard limit.contains(text.utf8.count) else {
            report("must be \(limit.lowerBound) to \(limit.upperBound) bytes, got \(text.utf8.count)")
            return nil
        }
        return Array(text.utf8)
    }
}
