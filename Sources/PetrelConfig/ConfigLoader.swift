import Foundation
import Petrel
import Yams

/// Reads and checks `petreld` config files.
///
/// Every problem in a file is reported at once, each with its line, field path,
/// the value found and what was expected. The format and the rules are in
/// `config/README.md`.
public enum ConfigLoader {
    /// Reads the file at `path` once, whole and settled (see `ConfigFile`); issues name the file as `path`.
    public static func load(path: String) throws(ConfigError) -> PetrelConfiguration {
        let text = try ConfigFile.read(path: path)
        return try parse(yaml: text, fileName: path)
    }

    /// Parses config text; `fileName` is only used to label issues.
    public static func parse(yaml: String, fileName: String = "<config>") throws(ConfigError) -> PetrelConfiguration {
        let issues = IssueCollector(fileName: fileName)
        let document: Node?
        do {
            document = try Yams.compose(yaml: yaml)
        } catch {
            throw ConfigError(issues: [syntaxIssue(error, yaml: yaml, fileName: fileName)])
        }
        guard let config = ConfigDecoder(issues: issues).decode(document) else {
            throw ConfigError(issues: issues.issues)
        }
        return config
    }

    // MARK: YAML syntax errors

    /// A syntax error becomes one issue at the spot libyaml stopped; nothing after it can be trusted.
    private static func syntaxIssue(_ error: Error, yaml: String, fileName: String) -> ConfigIssue {
        func issue(_ position: (line: Int, column: Int)?, _ message: String) -> ConfigIssue {
            ConfigIssue(file: fileName, line: position?.line ?? 1, column: position?.column ?? 1, field: "",
                        message: "invalid YAML: " + message)
        }
        func explain(_ problem: String, _ context: YamlError.Context?) -> String {
            guard let context else { return problem }
            return "\(problem) (\(context.text) on line \(context.mark.line))"
        }
        guard let error = error as? YamlError else { return issue(nil, "\(error)") }
        switch error {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            return issue((mark.line, mark.column), explain(problem, context) + hint(problem, line: mark.line, in: yaml))
        case .reader(let problem, let offset, _, _):
            return issue(offset.map { position(atUTF8Offset: $0, in: yaml) }, problem)
        default:
            return issue(nil, error.description)
        }
    }

    /// The two mistakes libyaml explains worst: tabs, and unquoted values with a colon.
    private static func hint(_ problem: String, line number: Int, in yaml: String) -> String {
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false)
        guard number >= 1, number <= lines.count else { return "" }
        let line = lines[number - 1]
        if line.prefix(while: { $0 == " " || $0 == "\t" }).contains("\t") {
            return "; indent with spaces, YAML does not allow tabs"
        }
        if problem.hasPrefix("mapping values are not allowed"),
           let colon = line.firstIndex(of: ":"), line[line.index(after: colon)...].contains(":") {
            return "; quote values that contain \": \" or end in a colon, like \"fd50:0:ffff::\""
        }
        return ""
    }

    /// libyaml's reader reports a byte offset; turn it into line and column.
    private static func position(atUTF8Offset offset: Int, in text: String) -> (line: Int, column: Int) {
        let before = text.utf8.prefix(offset)
        let line = before.filter { $0 == UInt8(ascii: "\n") }.count + 1
        let lineStart = before.lastIndex(of: UInt8(ascii: "\n")).map { before.index(after: $0) } ?? before.startIndex
        let column = (String(before[lineStart...]) ?? "").unicodeScalars.count + 1
        return (line, column)
    }
}
