import Foundation

/// Builds a page in the Prometheus text exposition format (version 0.0.4): one
/// `# HELP` and `# TYPE` per family, then its samples. Counter names end in
/// `_total`; values are in base units (bytes, seconds).
struct MetricsPage {
    typealias Labels = [(String, String)]

    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    private(set) var text = ""
    private var families: Set<String> = []

    mutating func counter(_ name: String, _ help: String, _ samples: [(Labels, UInt64)]) {
        precondition(name.hasSuffix("_total"), "counter \(name) must end in _total")
        family(name, help, "counter", samples.map { ($0.0, String($0.1)) })
    }

    /// A counter kept in seconds or other fractional units.
    mutating func counter(_ name: String, _ help: String, _ samples: [(Labels, Double)]) {
        precondition(name.hasSuffix("_total"), "counter \(name) must end in _total")
        family(name, help, "counter", samples.map { ($0.0, MetricsPage.format($0.1)) })
    }

    mutating func gauge(_ name: String, _ help: String, _ samples: [(Labels, Double)]) {
        family(name, help, "gauge", samples.map { ($0.0, MetricsPage.format($0.1)) })
    }

    private mutating func family(_ name: String, _ help: String, _ type: String, _ samples: [(Labels, String)]) {
        precondition(families.insert(name).inserted, "metric family \(name) rendered twice")
        text += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        for (labels, value) in samples {
            let rendered = labels.isEmpty ? "" : "{" + labels.map { "\($0.0)=\"\(MetricsPage.escape($0.1))\"" }.joined(separator: ",") + "}"
            text += "\(name)\(rendered) \(value)\n"
        }
    }

    static func format(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value > 0 ? "+Inf" : "-Inf" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}
