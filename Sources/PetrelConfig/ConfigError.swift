/// One problem found in a config file, located to the line and the field.
///
/// Its description reads like a compiler diagnostic:
/// `demo.yaml:14:9: vips[2].reals[0].weight: must be between 0 and 1000000, got 2000000`.
public struct ConfigIssue: Equatable, Sendable, CustomStringConvertible {
    /// The file name as given to the loader.
    public var file: String
    /// 1-based line; 0 when the problem is with the file as a whole (it cannot be read).
    public var line: Int
    /// 1-based column, counted in Unicode scalars; 0 when `line` is 0.
    public var column: Int
    /// Path of the field, like `vips[1].reals[0].address`; empty for the document itself.
    public var field: String
    /// What is wrong: the value found and what was expected.
    public var message: String

    public init(file: String, line: Int, column: Int, field: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.message = message
    }

    public var description: String {
        var text = file
        if line > 0 { text += ":\(line):\(column)" }
        text += ": "
        if !field.isEmpty { text += field + ": " }
        return text + message
    }
}

/// Why a config file was rejected: every problem found in it, in file order.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    /// Never empty when thrown by `ConfigLoader`.
    public var issues: [ConfigIssue]

    public init(issues: [ConfigIssue]) {
        self.issues = issues
    }

    /// One issue per line.
    public var description: String {
        issues.map(\.description).joined(separator: "\n")
    }
}
