import Foundation
import Petrel

// The flow log over the admin API: `GET /v1/flows?vip=&count=&seconds=&sample=`
// answers with JSON lines (application/x-ndjson), one per logged decision, and ends
// with a summary trailer. petreld and petrel share these types and their rules.

/// What one follower asks for. Every request ends: after `count` decisions or
/// `seconds`, whichever comes first (`petrel flows --follow` chains requests).
public struct FlowLogQuery: Sendable, Equatable {
    /// Only decisions for this VIP (nil: every VIP).
    public var vip: VipKey?
    public var count: Int
    public var seconds: Int
    /// One decision in `sample` (per CPU) is logged.
    public var sample: Int

    // One definition of each limit, used by petreld, the CLI and the API document.
    public static let countRule = IntegerRule(1...100_000)
    /// A request's length; short so no request (nor the API fuzzer) waits long.
    public static let secondsRule = IntegerRule(1...5)
    public static let sampleRule = IntegerRule(1...1_000_000)
    public static let defaults = FlowLogQuery(vip: nil, count: countRule.range.upperBound, seconds: secondsRule.range.upperBound, sample: 1)

    public init(vip: VipKey?, count: Int, seconds: Int, sample: Int) {
        self.vip = vip
        self.count = count
        self.seconds = seconds
        self.sample = sample
    }

    /// Reads and checks the query parameters; the error names the field.
    public init(query: [String: String]) throws(PetrelError) {
        func integer(_ name: String, _ rule: IntegerRule, default value: Int) throws(PetrelError) -> Int {
            guard let text = query[name] else { return value }
            guard let number = Int(text) else { throw .invalid(field: name, value: "\"\(text)\"", expected: rule.expectedInteger) }
            if let issue = rule.check(number, at: [.key(name)]) { throw PetrelError(issue) }
            return number
        }
        let known: Set = ["vip", "count", "seconds", "sample"]
        if let unknown = query.keys.sorted().first(where: { !known.contains($0) }) {
            throw .invalid(field: unknown, value: "\"\(query[unknown]!)\"", expected: "is not a parameter of /v1/flows (vip, count, seconds, sample)")
        }
        self.init(vip: try query["vip"].map { text throws(PetrelError) in try VipKey.parse(text, field: "vip") },
                  count: try integer("count", Self.countRule, default: Self.defaults.count),
                  seconds: try integer("seconds", Self.secondsRule, default: Self.defaults.seconds),
                  sample: try integer("sample", Self.sampleRule, default: Self.defaults.sample))
    }

    /// The query parameters of this request (defaults left out).
    public var parameters: [String: String] {
        var result: [String: String] = [:]
        if let vip { result["vip"] = "\(vip)" }
        if count != Self.defaults.count { result["count"] = "\(count)" }
        if seconds != Self.defaults.seconds { result["seconds"] = "\(seconds)" }
        if sample != Self.defaults.sample { result["sample"] = "\(sample)" }
        return result
    }
}

/// One logged decision, one JSON line. Fields are documented in docs/admin-api.yaml.
public struct FlowLogLine: Codable, Sendable, Equatable {
    /// When the data plane decided, RFC 3339 UTC with microseconds.
    public var time: String
    public var `protocol`: String
    /// `ipv4` or `ipv6`.
    public var family: String
    public var client: String
    public var clientPort: Int
    /// The VIP (`tcp/198.18.100.1:80`; a port-wildcard VIP ends in `:*`), or the destination if
    /// the VIP was removed since.
    public var vip: String
    public var destinationPort: Int
    public var real: String
    /// `ring`, `ring_after_miss`, `quic_cid`, `source_prefix`.
    public var reason: String
    /// False when the SYN-flood guard kept the decision out of the connection tables.
    public var remembered: Bool
    /// True on an `lru_bypass` VIP and for QUIC connection-ID routes: no table involved.
    public var tablesBypassed: Bool
    public var cpu: Int

    // Declared in the order the lines show them.
    enum CodingKeys: String, CodingKey {
        case time, `protocol`, family, client
        case clientPort = "client_port"
        case vip
        case destinationPort = "destination_port"
        case real, reason, remembered
        case tablesBypassed = "tables_bypassed"
        case cpu
    }

    public init(time: String, protocol: String, family: String, client: String, clientPort: Int, vip: String, destinationPort: Int,
                real: String, reason: String, remembered: Bool, tablesBypassed: Bool, cpu: Int) {
        self.time = time
        self.protocol = `protocol`
        self.family = family
        self.client = client
        self.clientPort = clientPort
        self.vip = vip
        self.destinationPort = destinationPort
        self.real = real
        self.reason = reason
        self.remembered = remembered
        self.tablesBypassed = tablesBypassed
        self.cpu = cpu
    }

    public init(_ decision: FlowDecision, vip: VipKey?) {
        time = FlowLogLine.format(decision.wallClock)
        `protocol` = decision.flow.proto.rawValue
        family = decision.flow.source.family == .ipv4 ? "ipv4" : "ipv6"
        client = "\(decision.flow.source)"
        clientPort = Int(decision.flow.sourcePort)
        self.vip = vip.map { "\($0)" } ?? "\(VipKey(address: decision.flow.destination, port: decision.flow.destinationPort, proto: decision.flow.proto))"
        destinationPort = Int(decision.flow.destinationPort)
        real = "\(decision.real)"
        reason = decision.reason.rawValue
        remembered = decision.remembered
        tablesBypassed = decision.tablesBypassed
        cpu = Int(decision.cpu)
    }

    /// The line as sent: compact JSON, keys in the order above (JSONEncoder would
    /// shuffle them), then a newline.
    public func encoded() -> Data {
        func text(_ value: String) -> String {
            var out = "\""
            for scalar in value.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "\""
        }
        let fields: [(CodingKeys, String)] = [
            (.time, text(time)), (.protocol, text(`protocol`)), (.family, text(family)), (.client, text(client)),
            (.clientPort, "\(clientPort)"), (.vip, text(vip)), (.destinationPort, "\(destinationPort)"), (.real, text(real)),
            (.reason, text(reason)), (.remembered, "\(remembered)"), (.tablesBypassed, "\(tablesBypassed)"), (.cpu, "\(cpu)"),
        ]
        return Data(("{" + fields.map { "\"\($0.0.rawValue)\":\($0.1)" }.joined(separator: ",") + "}\n").utf8)
    }

    static func format(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970
        let whole = floor(seconds)
        var time = time_t(whole)
        var parts = tm()
        gmtime_r(&time, &parts)
        let micros = Int((seconds - whole) * 1_000_000)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), micros)
    }
}

/// The trailer `Petrel-Flow-Summary` that ends a flow-log answer (JSON on one line).
public struct FlowLogSummary: Codable, Sendable, Equatable {
    /// Decisions sent to this follower.
    public var sent: Int
    /// Decisions meant for this follower but dropped because it read too slowly.
    public var dropped: Int
    /// Sampled decisions the data plane could not log meanwhile (its ring was full), for every follower.
    public var lostInKernel: Int
    /// Why the answer ended: `count`, `seconds`, or `stopping` (petreld stops).
    public var ended: String

    public static let trailer = "Petrel-Flow-Summary"

    enum CodingKeys: String, CodingKey {
        case sent, dropped, ended
        case lostInKernel = "lost_in_kernel"
    }

    public init(sent: Int, dropped: Int, lostInKernel: Int, ended: String) {
        self.sent = sent
        self.dropped = dropped
        self.lostInKernel = lostInKernel
        self.ended = ended
    }
}

extension VipKey {
    /// A VIP as the CLI and queries write it: `tcp/198.18.100.1:80`, `udp/[fd00::1]:53`,
    /// `tcp/198.18.100.2:*` (every port). Errors name `field` (the CLI passes `VIP <text>`).
    public static func parse(_ text: String, field: String) throws(PetrelError) -> VipKey {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2, let (host, port) = splitHostPort(parts[1]) else {
            throw .invalid(field: field, value: "",
                           expected: "must be PROTO/ADDRESS:PORT, like tcp/198.18.100.1:80 (IPv6 in brackets: tcp/[fd50::1]:80)")
        }
        do {
            return try VipKey.parse(protocol: parts[0], address: host, port: port == "*" ? "0" : port)
        } catch {
            guard case let .invalid(part, value, expected) = error else { throw error }
            throw .invalid(field: "\(field) (\(part))", value: value, expected: expected)
        }
    }
}

/// Splits `198.18.1.2:40000` or `[fd50::2]:40000` into address and port text.
public func splitHostPort(_ text: String) -> (String, String)? {
    if text.hasPrefix("[") {
        guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
        return (String(text[text.index(after: text.startIndex)..<close]), String(text[text.index(close, offsetBy: 2)...]))
    }
    guard let colon = text.lastIndex(of: ":"), text.filter({ $0 == ":" }).count == 1 else { return nil }
    return (String(text[..<colon]), String(text[text.index(after: colon)...]))
}
