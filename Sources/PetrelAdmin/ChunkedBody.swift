import Foundation

/// Decodes an HTTP/1.1 body sent with chunked transfer encoding as it arrives:
/// feed it the bytes read, in any pieces, and it hands out the body's bytes and,
/// at the end, the trailers (petreld puts a streamed answer's summary there).
public struct ChunkedBody: Sendable {
    public struct Malformed: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    private enum State: Sendable {
        case size
        case data(remaining: Int)
        case dataEnd
        case trailers
        case done
    }

    private var state = State.size
    private var line = Data()
    /// Trailer fields (names lower-cased), complete once `isComplete`.
    public private(set) var trailers: [String: String] = [:]

    public init() {}

    /// The last chunk and the trailers have been read.
    public var isComplete: Bool {
        if case .done = state { return true }
        return false
    }

    /// Consumes `bytes`; returns the body bytes they carried. Bytes after the end are ignored.
    public mutating func feed(_ bytes: Data) throws(Malformed) -> Data {
        var body = Data()
        var index = bytes.startIndex
        while index < bytes.endIndex {
            switch state {
            case .done:
                return body
            case .data(let remaining):
                let take = min(remaining, bytes.endIndex - index)
                body.append(bytes[index..<(index + take)])
                index += take
                state = remaining == take ? .dataEnd : .data(remaining: remaining - take)
            case .size, .dataEnd, .trailers:
                let byte = bytes[index]
                index += 1
                guard byte == UInt8(ascii: "\n") else {
                    guard line.count < 4_096 else { throw Malformed(description: "chunked body: a line longer than 4096 bytes") }
                    if byte != UInt8(ascii: "\r") { line.append(byte) }
                    continue
                }
                let text = String(decoding: line, as: UTF8.self)
                line.removeAll(keepingCapacity: true)
                try endOfLine(text)
            }
        }
        return body
    }

    private mutating func endOfLine(_ text: String) throws(Malformed) {
        switch state {
        case .size:
            let digits = text.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard let size = Int(digits, radix: 16), size >= 0 else {
                throw Malformed(description: "chunked body: bad chunk size \"\(text)\"")
            }
            state = size == 0 ? .trailers : .data(remaining: size)
        case .dataEnd:
            guard text.isEmpty else { throw Malformed(description: "chunked body: a chunk does not end with CRLF") }
            state = .size
        case .trailers:
            if text.isEmpty {
                state = .done
            } else if let colon = text.firstIndex(of: ":") {
                trailers[text[..<colon].lowercased()] = text[text.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        case .data, .done:
            break
        }
    }
}
