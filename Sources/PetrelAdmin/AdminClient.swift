import Foundation
import Glibc

/// Why a request to the admin socket did not get an answer.
public struct AdminClientError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A small HTTP/1.1 client for petreld's admin unix socket: one request per
/// connection, with a deadline for connecting and one for the whole exchange.
public struct AdminClient: Sendable {
    public var socketPath: String
    /// Longest wait for the whole exchange: connecting, sending, the answer.
    public var timeoutSeconds: Int
    /// Longest wait for petreld to accept the connection.
    public var connectTimeoutSeconds: Int

    public init(socketPath: String, timeoutSeconds: Int = 30, connectTimeoutSeconds: Int = 5) {
        self.socketPath = socketPath
        self.timeoutSeconds = timeoutSeconds
        self.connectTimeoutSeconds = connectTimeoutSeconds
    }

    /// Sends a request and reads the whole answer.
    public func send(_ request: HTTPRequest) throws(AdminClientError) -> HTTPResponse {
        let deadline = Deadline(seconds: timeoutSeconds)
        let fd = try connect(deadline: Deadline(seconds: connectSeconds))
        defer { close(fd) }
        try write(request, to: fd, until: deadline)
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n == 0 { break }
            if n > 0 { received.append(buffer, count: n); continue }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: try wait(fd, for: Int16(POLLIN), until: deadline, request)
            default: throw interrupted(request, errno)
            }
        }
        guard let response = HTTPResponse.parse(received) else {
            if received.isEmpty { throw interrupted(request, nil) }
            throw AdminClientError("petreld sent an answer that is not HTTP on \(socketPath)")
        }
        return response
    }

    // MARK: Streamed answers

    /// An answer whose body came as a stream.
    public struct StreamedResponse: Sendable {
        /// Status and headers; the body only when the answer was not streamed (an error, say).
        public var response: HTTPResponse
        /// The trailers sent after the last chunk (names lower-cased): petreld's summary of the stream.
        public var trailers: [String: String]
        /// False when the connection ended before the last chunk (petreld stopped or crashed), or `body` asked to stop.
        public var complete: Bool
    }

    /// Sends a request whose answer may be streamed (chunked transfer encoding): `body` gets
    /// the bytes of a 2xx answer as they arrive, and returns false to stop reading (the
    /// connection is then closed, which tells petreld to stop). The head must come within
    /// the timeout; the body may take as long as the stream lasts.
    public func stream(_ request: HTTPRequest, body: (Data) -> Bool) throws(AdminClientError) -> StreamedResponse {
        let deadline = Deadline(seconds: timeoutSeconds)
        let fd = try connect(deadline: Deadline(seconds: connectSeconds))
        defer { close(fd) }
        try write(request, to: fd, until: deadline)
        var pending = Data()
        var head: HTTPResponse?
        var decoder = ChunkedBody()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 {
                switch errno {
                case EINTR: continue
                case EAGAIN, EWOULDBLOCK:
                    // The head within the deadline; then wait as long as the stream lasts.
                    try wait(fd, for: Int16(POLLIN), until: head == nil ? deadline : nil, request)
                    continue
                default: throw interrupted(request, errno)
                }
            }
            if n == 0 {
                guard let head else {
                    if let whole = HTTPResponse.parse(pending) { return StreamedResponse(response: whole, trailers: [:], complete: true) }
                    throw interrupted(request, nil)
                }
                // An answer that was not chunked ends when the connection closes.
                let chunked = head.headers["transfer-encoding"]?.lowercased() == "chunked"
                var whole = head
                if !chunked { whole.body = pending }
                return StreamedResponse(response: whole, trailers: decoder.trailers, complete: !chunked)
            }
            pending.append(buffer, count: n)
            if head == nil {
                guard let end = pending.range(of: Data("\r\n\r\n".utf8)) else {
                    guard pending.count < 65_536 else { throw AdminClientError("petreld sent an answer that is not HTTP on \(socketPath)") }
                    continue
                }
                guard let parsed = HTTPResponse.parse(pending[..<end.upperBound]) else {
                    throw AdminClientError("petreld sent an answer that is not HTTP on \(socketPath)")
                }
                head = parsed
                pending = Data(pending[end.upperBound...])
            }
            guard let head, head.headers["transfer-encoding"]?.lowercased() == "chunked", (200..<300).contains(head.status) else { continue }
            let bytes: Data
            do {
                bytes = try decoder.feed(pending)
            } catch {
                throw AdminClientError("petreld sent a stream petrel cannot read on \(socketPath): \(error)")
            }
            pending.removeAll(keepingCapacity: true)
            if !bytes.isEmpty, !body(bytes) { return StreamedResponse(response: head, trailers: decoder.trailers, complete: false) }
            if decoder.isComplete { return StreamedResponse(response: head, trailers: decoder.trailers, complete: true) }
        }
    }

    // MARK: Sending

    private func write(_ request: HTTPRequest, to fd: Int32, until deadline: Deadline) throws(AdminClientError) {
        let bytes = request.serialized()
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n >= 0 { sent += n; continue }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: try wait(fd, for: Int16(POLLOUT), until: deadline, request)
            default: throw interrupted(request, errno)
            }
        }
    }

    // MARK: Connecting

    private var connectSeconds: Int { min(connectTimeoutSeconds, timeoutSeconds) }

    private func connect(deadline: Deadline) throws(AdminClientError) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw AdminClientError("socket path too long: \(socketPath)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: pathBytes) }
        let flags = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
        let fd = socket(AF_UNIX, flags, 0)
        guard fd >= 0 else { throw AdminClientError("cannot open a unix socket: \(String(cString: strerror(errno)))") }
        while true {
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            if result == 0 { return fd }
            let code = errno
            // A unix socket whose accept queue is full says EAGAIN: petreld is busy; try again until the deadline.
            if code == EAGAIN || code == EINTR, !deadline.passed {
                usleep(10_000)
                continue
            }
            close(fd)
            switch code {
            case EAGAIN:
                throw AdminClientError("petreld did not accept the connection within \(connectSeconds) s on \(socketPath) (its queue is full: is it stopped or overloaded?)")
            case ENOENT:
                throw AdminClientError("petreld is not running? no socket at \(socketPath) (set --socket or PETREL_SOCKET)")
            case ECONNREFUSED:
                throw AdminClientError("petreld is not running? \(socketPath) exists but nobody listens on it")
            case EACCES, EPERM:
                throw AdminClientError("permission denied on \(socketPath): the admin socket is mode 0600, run as its owner (root)")
            default:
                throw AdminClientError("cannot connect to \(socketPath): \(String(cString: strerror(code)))")
            }
        }
    }

    // MARK: Waiting and failing

    /// Waits for `events` on `fd` until `deadline` (nil: as long as it takes).
    private func wait(_ fd: Int32, for events: Int16, until deadline: Deadline?, _ request: HTTPRequest) throws(AdminClientError) {
        var poller = pollfd(fd: fd, events: events, revents: 0)
        while true {
            let remaining = deadline?.remainingMilliseconds ?? -1
            guard remaining != 0 else { throw timedOut(request) }
            let ready = poll(&poller, 1, Int32(remaining))
            if ready > 0 { return }
            if ready == 0 { throw timedOut(request) }
            if errno != EINTR { throw interrupted(request, errno) }
        }
    }

    private func timedOut(_ request: HTTPRequest) -> AdminClientError {
        AdminClientError("petreld did not answer \(request.method) \(request.path) within \(timeoutSeconds) s on \(socketPath)"
            + AdminClient.unknownOutcome(request))
    }

    /// The connection broke (or closed) before a whole answer came: for a change, petreld may or may not have made it.
    private func interrupted(_ request: HTTPRequest, _ code: Int32?) -> AdminClientError {
        let why = code.map { String(cString: strerror($0)) } ?? "closed without an answer"
        return AdminClientError("the connection to petreld broke before it answered \(request.method) \(request.path) (\(why)); "
            + "petreld may have stopped or crashed: see its log (journalctl -u petreld)" + AdminClient.unknownOutcome(request))
    }

    private static func unknownOutcome(_ request: HTTPRequest) -> String {
        guard request.method != "GET" else { return "" }
        return "\nthe outcome is unknown: the change may or may not have been applied. "
            + "Check with `petrel status` and `petrel vip list` once petreld answers, then retry if needed."
    }
}

/// A point in time on the monotonic clock.
private struct Deadline {
    let end: UInt64

    init(seconds: Int) { end = DispatchTime.now().uptimeNanoseconds + UInt64(max(seconds, 0)) * 1_000_000_000 }

    var passed: Bool { DispatchTime.now().uptimeNanoseconds >= end }

    var remainingMilliseconds: Int {
        let now = DispatchTime.now().uptimeNanoseconds
        return now >= end ? 0 : Int((end - now + 999_999) / 1_000_000)
    }
}
