import Foundation

/// One HTTP/1.1 request as the admin API sees it, whole (one request per connection).
public struct HTTPRequest: Sendable {
    public var method: String
    /// The path without the query, percent-decoded, like `/v1/vips/tcp/198.18.100.1/80`.
    public var path: String
    public var query: [String: String]
    public var headers: [String: String]
    public var body: Data

    public init(method: String, path: String, query: [String: String] = [:], headers: [String: String] = [:], body: Data = Data()) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// The path split at "/", without empty parts.
    public var pathComponents: [String] { path.split(separator: "/").map(String.init) }

    /// A request from its method and request target (`/v1/explain?proto=tcp&...`):
    /// the path is split from the query, and both are percent-decoded.
    public init(method: String, target: String, headers: [String: String] = [:], body: Data = Data()) {
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let rawPath = parts.first.map(String.init) ?? "/"
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                    .map { String($0).replacingOccurrences(of: "+", with: " ") }
                let key = kv[0].removingPercentEncoding ?? kv[0]
                query[key] = kv.count == 2 ? (kv[1].removingPercentEncoding ?? kv[1]) : ""
            }
        }
        self.init(method: method, path: rawPath.removingPercentEncoding ?? rawPath, query: query, headers: headers, body: body)
    }

    /// The request on the wire.
    public func serialized() -> Data {
        var target = path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? path
        if !query.isEmpty {
            let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~:"))
            target += "?" + query.sorted { $0.key < $1.key }.map {
                "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.value)"
            }.joined(separator: "&")
        }
        var head = "\(method) \(target) HTTP/1.1\r\nHost: petreld\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(body.count)\r\n\r\n"
        return Data(head.utf8) + body
    }
}

/// One HTTP/1.1 response.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var contentType: String
    /// Headers besides Content-Type, Content-Length and Connection (e.g. `Allow` on a 405).
    public var headers: [String: String]
    public var body: Data

    public init(status: Int, contentType: String = "application/json", headers: [String: String] = [:], body: Data = Data()) {
        self.status = status
        self.contentType = contentType
        self.headers = headers
        self.body = body
    }

    /// Parses a whole response read until the server closed the connection.
    public static func parse(_ bytes: Data) -> HTTPResponse? {
        guard let headerEnd = bytes.range(of: Data("\r\n\r\n".utf8)),
              let head = String(data: bytes[bytes.startIndex..<headerEnd.lowerBound], encoding: .utf8) else { return nil }
        let lines = head.components(separatedBy: "\r\n")
        let statusLine = lines[0].split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let contentType = headers.removeValue(forKey: "content-type") ?? ""
        return HTTPResponse(status: status, contentType: contentType, headers: headers, body: Data(bytes[headerEnd.upperBound...]))
    }
}

/// JSON with the admin API's conventions: sorted keys, pretty-printed.
public enum AdminJSON {
    public static func encode<T: Encodable>(_ value: T) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return ((try? encoder.encode(value)) ?? Data("{}".utf8)) + Data("\n".utf8)
    }

    /// One line of compact JSON, keys sorted (no newline): e.g. an HTTP trailer.
    public static func encodeCompact<T: Encodable>(_ value: T) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(value)) ?? Data("{}".utf8)
    }

    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        try JSONDecoder().decode(type, from: data)
    }

    /// A decoding error in the operator's words, naming the field.
    public static func describe(_ error: Error) -> String {
        guard let error = error as? DecodingError else { return "\(error)" }
        func path(_ codingPath: [CodingKey]) -> String {
            codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: ["."])
        }
        switch error {
        case let .keyNotFound(key, context):
            let parent = path(context.codingPath)
            return "\(parent.isEmpty ? "" : parent + ".")\(key.stringValue): is required"
        case let .typeMismatch(type, context):
            return "\(path(context.codingPath)): must be \(type)"
        case let .valueNotFound(type, context):
            return "\(path(context.codingPath)): must be \(type), got null"
        case let .dataCorrupted(context):
            let field = path(context.codingPath)
            return field.isEmpty ? "body: must be a JSON document (\(context.debugDescription))" : "\(field): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
