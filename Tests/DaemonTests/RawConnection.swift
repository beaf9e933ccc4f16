import Foundation
import Glibc

/// A client connection to a unix socket that sends whatever bytes a test wants
/// (malformed, slow, none) and reads what the server says, with a timeout.
final class RawConnection {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let fd: Int32

    init(unixPath path: String) throws {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "connect \(path): \(message)")
        }
    }

    deinit { close(fd) }

    /// Sends the bytes; false if the server has closed the connection.
    @discardableResult
    func send(_ text: String) -> Bool { send(Data(text.utf8)) }

    @discardableResult
    func send(_ bytes: Data) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }

    /// Reads until the server closes the connection or `timeout` passes; nil on timeout.
    func readUntilClosed(timeout: TimeInterval) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { return nil }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(remaining * 1000) + 1)
            if ready < 0, errno == EINTR { continue }
            guard ready > 0 else { return nil }
            let n = read(fd, &buffer, buffer.count)
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return String(decoding: received, as: UTF8.self) }  // closed (or reset) by the server
            received.append(buffer, count: n)
        }
    }

    /// Sends a whole request and returns the raw answer.
    static func exchange(_ path: String, _ request: String, timeout: TimeInterval = 10) throws -> String {
        let connection = try RawConnection(unixPath: path)
        connection.send(request)
        guard let answer = connection.readUntilClosed(timeout: timeout) else { throw Failure(description: "no answer to \(request.debugDescription)") }
        return answer
    }
}
