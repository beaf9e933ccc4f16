import Foundation
import Glibc

/// Why a request to the admin socket did not get an answer.
public struct AdminClientError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A small HTTP/1.1 client for petreld's admin unix socket: one request per connection.
public struct AdminClient: Sendable {
    public var socketPath: String
    /// Longest wait for an answer.
    public var timeoutSeconds: Int

    public init(socketPath: String, timeoutSeconds: Int = 30) {
        self.socketPath = socketPath
        self.timeoutSeconds = timeoutSeconds
    }

    /// Sends a request and reads the whole answer.
    public func send(_ request: HTTPRequest) throws(AdminClientError) -> HTTPResponse {
        let fd = try connect()
        defer { close(fd) }
        let bytes = request.serialized()
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + sent, $0.count - sent) }
            if n < 0 {
                if errno == EINTR { continue }
                throw AdminClientError("cannot send the request to \(socketPath): \(String(cString: strerror(errno)))")
            }
            sent += n
        }
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    throw AdminClientError("petreld did not answer within \(timeoutSeconds) s on \(socketPath)")
                }
                throw AdminClientError("cannot read the answer from \(socketPath): \(String(cString: strerror(errno)))")
            }
            received.append(buffer, count: n)
        }
        guard let response = HTTPResponse.parse(received) else {
            throw AdminClientError("petreld sent an answer that is not HTTP on \(socketPath)")
        }
        return response
    }

    private func connect() throws(AdminClientError) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw AdminClientError("socket path too long: \(socketPath)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: pathBytes) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw AdminClientError("cannot open a unix socket: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if result != 0 {
            let code = errno
            close(fd)
            switch code {
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
        return fd
    }
}
