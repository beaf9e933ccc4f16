import Petrel

/// `GET /v1/capture`'s query parameters, read into a CaptureFilter (then checked
/// by CaptureFilter.validate, the one place its rules live). Errors name the parameter.
public enum CaptureQuery {
    public static let parameters = ["vip", "real", "outcome", "family", "protocol", "sample", "direction", "count", "seconds",
                                    "snaplen", "format"]

    public static func filter(from query: [String: String]) throws(PetrelError) -> CaptureFilter {
        if let unknown = query.keys.sorted().first(where: { !parameters.contains($0) }) {
            throw .invalid(field: unknown, value: "\"\(query[unknown] ?? "")\"",
                           expected: "is not a capture parameter (known: \(parameters.joined(separator: ", ")))")
        }
        var filter = CaptureFilter()
        if let text = query["vip"] { filter.vip = try vip(text) }
        if let text = query["real"] {
            guard let address = IPAddress(text) else { throw .invalid(field: "real", value: "\"\(text)\"", expected: "must be an IPv4 or IPv6 address") }
            filter.real = address
        }
        if let text = query["outcome"] {
            var outcomes: Set<StatReason> = []
            for name in text.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
                guard let named = CaptureFilter.outcomes(named: name) else {
                    throw .invalid(field: "outcome", value: "\"\(name)\"", expected: "must be one of \(CaptureFilter.outcomeNames)")
                }
                outcomes.formUnion(named)
            }
            filter.outcomes = outcomes
        }
        if let text = query["family"] {
            guard let family = AddressFamily(rawValue: text) else { throw .invalid(field: "family", value: "\"\(text)\"", expected: "must be one of ipv4, ipv6") }
            filter.family = family
        }
        if let text = query["protocol"] { filter.packetProtocol = try choice("protocol", text, CaptureFilter.PacketProtocol.self) }
        if let text = query["direction"] { filter.direction = try choice("direction", text, CaptureFilter.Direction.self) }
        if let text = query["format"] { filter.format = try choice("format", text, CaptureFilter.Format.self) }
        if let text = query["sample"] { filter.sampleEvery = try number("sample", text) }
        if let text = query["count"] { filter.count = try number("count", text) }
        if let text = query["seconds"] { filter.seconds = try number("seconds", text) }
        if let text = query["snaplen"] { filter.snapLength = try number("snaplen", text) }
        return filter
    }

    /// `tcp/198.18.100.1:80`, `udp/[fd50::1]:53`, `tcp/198.18.100.2:*`.
    public static func vip(_ text: String) throws(PetrelError) -> VipKey {
        let expected = "must be PROTO/ADDRESS:PORT, like tcp/198.18.100.1:80 or udp/[fd50::1]:53"
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { throw .invalid(field: "vip", value: "\"\(text)\"", expected: expected) }
        let rest = parts[1]
        let host: String
        let port: String
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]"), rest[rest.index(after: close)...].hasPrefix(":") {
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            port = String(rest[rest.index(close, offsetBy: 2)...])
        } else if let colon = rest.lastIndex(of: ":"), rest.filter({ $0 == ":" }).count == 1 {
            host = String(rest[..<colon])
            port = String(rest[rest.index(after: colon)...])
        } else {
            throw .invalid(field: "vip", value: "\"\(text)\"", expected: expected)
        }
        do {
            return try VipKey.parse(protocol: parts[0], address: host, port: port == "*" ? "0" : port)
        } catch {
            throw .invalid(field: "vip", value: "\"\(text)\"", expected: "\(expected) (\(error))")
        }
    }

    private static func number(_ field: String, _ text: String) throws(PetrelError) -> Int {
        guard let value = Int(text) else { throw .invalid(field: field, value: "\"\(text)\"", expected: "must be a whole number") }
        return value
    }

    private static func choice<T: RawRepresentable & CaseIterable>(_ field: String, _ text: String, _: T.Type) throws(PetrelError) -> T
        where T.RawValue == String {
        guard let value = T(rawValue: text) else {
            throw .invalid(field: field, value: "\"\(text)\"", expected: "must be one of \(T.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return value
    }
}
