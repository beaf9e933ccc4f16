import Petrel
import Yams

// The reading layer: YAML nodes with their field path, and typed accessors that
// report what was wrong and return nil, so one pass finds every problem.

// MARK: - Issue collection

/// The issues of one file, as they are found.
final class IssueCollector {
    let fileName: String
    private var found: [ConfigIssue] = []

    init(fileName: String) {
        self.fileName = fileName
    }

    var isEmpty: Bool { found.isEmpty }

    func report(_ message: String, field: String, at mark: Mark?) {
        found.append(ConfigIssue(
            file: fileName, line: mark?.line ?? 1, column: mark?.column ?? 1, field: field, message: message))
    }

    /// In file order; issues at the same spot keep the order they were found in.
    var issues: [ConfigIssue] {
        found.enumerated().sorted { a, b in
            (a.element.line, a.element.column, a.offset) < (b.element.line, b.element.column, b.offset)
        }.map(\.element)
    }
}

// MARK: - A node and where it is

/// A YAML node together with its field path (`vips[1].reals[0].address`).
struct ConfigNode {
    let node: Node
    let field: String
    let issues: IssueCollector

    var mark: Mark? { node.mark }
    var line: Int { mark?.line ?? 1 }

    /// Reports a problem with this field.
    func report(_ message: String) {
        issues.report(message, field: field, at: mark)
    }

    /// Reports an issue found by the model's rules (`Vip.validate`), whose path is
    /// relative to this node, at the node that path leads to. A field left out (a
    /// default) is reported at the nearest node that is written.
    func report(_ issue: ValidationIssue) {
        var node = self.node
        walk: for component in issue.path.components {
            switch (component, node) {
            case (.key(let key), .mapping):
                guard let next = node[key] else { break walk }
                node = next
            case (.index(let index), .sequence(let sequence)) where index < sequence.count:
                node = sequence[sequence.index(sequence.startIndex, offsetBy: index)]
            default:
                break walk
            }
        }
        issues.report(issue.message, field: path(of: issue.path), at: node.mark)
    }

    private func path(of relative: FieldPath) -> String {
        let tail = relative.description
        if field.isEmpty || tail.isEmpty { return field + tail }
        return tail.hasPrefix("[") ? field + tail : "\(field).\(tail)"
    }

    func child(_ key: String, _ node: Node) -> ConfigNode {
        ConfigNode(node: node, field: path(of: key), issues: issues)
    }

    func path(of key: String) -> String {
        field.isEmpty ? key : "\(field).\(key)"
    }

    func element(_ index: Int, _ node: Node) -> ConfigNode {
        ConfigNode(node: node, field: "\(field)[\(index)]", issues: issues)
    }

    /// True for an empty value, `~` or `null`.
    var isNull: Bool {
        if case .null = ScalarMeaning(node) { return true }
        return false
    }

    // MARK: Typed readers

    /// Any scalar except null, as written. Numbers and booleans are accepted as their text.
    func string() -> String? {
        guard case .scalar(let scalar) = node, !isNull else {
            report("must be a string, got \(describe())")
            return nil
        }
        return scalar.string
    }

    /// A decimal integer inside `range`.
    func integer(in range: ClosedRange<Int>) -> Int? {
        integer(IntegerRule(range), typeMessage: "must be an integer")
    }

    /// A decimal integer that `rule` accepts; the messages are the rule's.
    func integer(_ rule: IntegerRule, typeMessage: String? = nil) -> Int? {
        let range = rule.range
        guard case .integer(let text) = ScalarMeaning(node) else {
            report("\(typeMessage ?? rule.expectedInteger), got \(describe())")
            return nil
        }
        let digits = text.filter { $0 != "_" }
        let unsigned = digits.drop { $0 == "+" || $0 == "-" }
        if unsigned.count > 1, unsigned.first == "0" {
            report("must be a decimal integer without leading zeros (YAML reads them as octal), got \(text)")
            return nil
        }
        guard let value = Int(digits.hasPrefix("+") ? String(digits.dropFirst()) : digits) else {
            report("\(rule.expected), got \(text)")
            return nil
        }
        guard range.contains(value) else {
            report("\(rule.expected), got \(value)")
            return nil
        }
        return value
    }

    /// `true` or `false` (YAML 1.2's spelling; `yes`/`on` are refused as ambiguous).
    func boolean() -> Bool? {
        guard case .scalar(let scalar) = node, !isNull, scalar.style == .plain, ["true", "false"].contains(scalar.string) else {
            report("must be true or false, got \(describe())")
            return nil
        }
        return scalar.string == "true"
    }

    /// One of the raw values of `T`.
    func choice<T: RawRepresentable & CaseIterable>(of type: T.Type) -> T? where T.RawValue == String {
        let allowed = T.allCases.map(\.rawValue)
        guard case .scalar(let scalar) = node, !isNull, let value = T(rawValue: scalar.string) else {
            report("must be one of \(allowed.joined(separator: ", ")); got \(describe())")
            return nil
        }
        return value
    }

    /// An IPv4 or IPv6 address in text form.
    func ipAddress() -> IPAddress? {
        guard case .scalar(let scalar) = node, !isNull else {
            report("must be an IP address, got \(describe())")
            return nil
        }
        guard let address = IPAddress(scalar.string) else {
            report("must be an IPv4 or IPv6 address, got \(describe())")
            return nil
        }
        return address
    }

    /// A client prefix such as `10.0.0.0/8` or `fd00::/16` (what it must be beyond
    /// its form, family and host bits, is `Vip.validate`'s to say).
    func ipPrefix() -> IPPrefix? {
        guard case .scalar(let scalar) = node, !isNull, let prefix = IPPrefix(scalar.string) else {
            report("must be an IPv4 or IPv6 prefix in CIDR form (address/length, like 10.0.0.0/8), got \(describe())")
            return nil
        }
        return prefix
    }

    /// The elements of a list; null counts as the empty list.
    func list() -> [ConfigNode]? {
        if isNull { return [] }
        guard case .sequence(let sequence) = node else {
            report("must be a list, got \(describe())")
            return nil
        }
        return sequence.enumerated().map { element($0.offset, $0.element) }
    }

    /// The entries of a mapping whose keys must be among `keys`. Unknown and
    /// repeated keys are reported here. Null counts as the empty mapping.
    func mapping(keys: [String]) -> ConfigMapping? {
        if isNull {
            return ConfigMapping(owner: self, entries: [:])
        }
        guard case .mapping(let mapping) = node else {
            report("must be a mapping of \(keys.joined(separator: ", ")); got \(describe())")
            return nil
        }
        var entries: [String: (key: Node, value: Node)] = [:]
        for (keyNode, value) in mapping {
            guard case .scalar(let keyScalar) = keyNode else {
                issues.report("keys must be plain names, got \(ConfigNode(node: keyNode, field: "", issues: issues).describe())",
                              field: field, at: keyNode.mark)
                continue
            }
            let key = keyScalar.string
            let keyField = child(key, keyNode)
            if let first = entries[key] {
                keyField.report("is set twice; the first is on line \(first.key.mark?.line ?? 0)")
                continue
            }
            guard key != "<<" else {
                keyField.report("merge keys (<<) are not supported; write the keys out (anchors and aliases do work)")
                continue
            }
            guard keys.contains(key) else {
                var message = "unknown key; expected one of \(keys.joined(separator: ", "))"
                if let guess = Self.closest(to: key, among: keys) { message += " (did you mean \(guess)?)" }
                keyField.report(message)
                continue
            }
            entries[key] = (keyNode, value)
        }
        return ConfigMapping(owner: self, entries: entries)
    }

    // MARK: Describing a value in a message

    /// The value as an error message shows it: `2000000`, `"eth0"`, `a list`, `nothing`.
    func describe() -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let scalar):
            switch ScalarMeaning(node) {
            case .null: return "nothing"
            case .integer(let text): return text
            case .other: return scalar.string
            case .string: return scalar.style == .plain ? quoted(scalar.string) : "the string \(quoted(scalar.string))"
            }
        }
    }

    private func quoted(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// A known key that `key` is probably a misspelling of.
    static func closest(to key: String, among keys: [String]) -> String? {
        let folded = key.lowercased().filter { $0.isLetter || $0.isNumber }
        if let match = keys.first(where: { $0.filter { $0 != "_" } == folded }) { return match }
        // A shortened key (`proto`, `conn`) or one with a word too many.
        if key.count >= 3, let match = keys.first(where: { $0.hasPrefix(key) || key.hasPrefix($0) }) { return match }
        let scored = keys.map { (key: $0, distance: editDistance(key, $0)) }.min { $0.distance < $1.distance }
        guard let best = scored, best.distance <= 2 else { return nil }
        return best.key
    }

    /// Levenshtein distance: the fewest single-character edits that turn `a` into `b`.
    private static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in a.indices {
            var diagonal = row[0]
            row[0] = i + 1
            for j in b.indices {
                let replaced = diagonal + (a[i] == b[j] ? 0 : 1)
                diagonal = row[j + 1]
                row[j + 1] = min(replaced, row[j + 1] + 1, row[j] + 1)
            }
        }
        return row[b.count]
    }
}

// MARK: - Mapping access

/// A checked mapping: every key in it is known and appears once.
struct ConfigMapping {
    let owner: ConfigNode
    let entries: [String: (key: Node, value: Node)]

    /// The value of `key`, or nil when it is absent or null (the setting keeps its default).
    func optional(_ key: String) -> ConfigNode? {
        guard let entry = entries[key] else { return nil }
        let node = owner.child(key, entry.value)
        return node.isNull ? nil : node
    }

    /// The value of `key`; reports it when absent or null.
    func required(_ key: String) -> ConfigNode? {
        guard let entry = entries[key] else {
            owner.issues.report("required key is missing", field: owner.path(of: key), at: owner.mark)
            return nil
        }
        let node = owner.child(key, entry.value)
        if node.isNull {
            owner.issues.report("required key has no value", field: node.field, at: entry.key.mark)
            return nil
        }
        return node
    }

    /// Reads an optional setting: its default when absent, nil when present but invalid.
    func setting<T>(_ key: String, default value: T, _ read: (ConfigNode) -> T?) -> T? {
        guard let node = optional(key) else { return value }
        return read(node)
    }
}

// MARK: - What a scalar means

extension ConfigLoader {
    /// Whether `text`, written unquoted as a YAML value, is read back as that string (and not
    /// as a number, a boolean or null): what a tool writing config files needs to know.
    public static func readsAsPlainString(_ text: String) -> Bool {
        if case .string = ScalarMeaning(.scalar(Node.Scalar(text, .implicit, .plain))) { return true }
        return false
    }
}

/// How Petrel reads a YAML scalar: quoted text is always a string; plain text
/// is resolved with YAML's usual rules (so `80` is a number and `~` is null).
enum ScalarMeaning {
    case null
    case integer(String)
    /// A float, boolean or timestamp: a plain scalar that is neither text nor an integer.
    case other
    case string

    init(_ node: Node) {
        guard case .scalar(let scalar) = node else {
            self = .other
            return
        }
        guard scalar.style == .plain || scalar.style == .any else {
            self = .string
            return
        }
        switch Resolver.default.resolveTag(of: Node(scalar.string)) {
        case .null: self = .null
        case .int: self = ScalarMeaning.isDecimal(scalar.string) ? .integer(scalar.string) : .other
        case .str: self = .string
        default: self = .other
        }
    }

    /// Digits with optional sign and `_` separators; hex, octal and base-60 forms are not integers here.
    private static func isDecimal(_ text: String) -> Bool {
        let body = text.first == "+" || text.first == "-" ? text.dropFirst() : Substring(text)
        return body.first?.isASCII == true && body.first?.isNumber == true
            && body.allSatisfy { ($0.isASCII && $0.isNumber) || $0 == "_" }
    }
}
