import Foundation
import Glibc
import PetrelAdmin

/// A listening socket (unix or loopback TCP) serving HTTP/1.1, one request per
/// connection, each connection on its own thread. The admin API is small and
/// rarely used, so simplicity wins over throughput.
final class HTTPListener: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    let name: String
    private let fd: Int32
    private let unixPath: String?

    /// Listens on a unix socket: the directory is created, a stale socket removed, the socket made mode 0600.
    init(unixPath path: String) throws {
        name = "unix:\(path)"
        unixPath = path
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw Failure(description: "admin.socket: path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        var info = stat()
        if lstat(path, &info) == 0 {
            guard (info.st_mode & S_IFMT) == S_IFSOCK else {
                throw Failure(description: "admin.socket: \(path) exists and is not a socket; not removing it")
            }
            unlink(path)  // stale: left by a petreld that did not exit cleanly
        }
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "admin.socket: socket(): \(String(cString: strerror(errno)))") }
        // The socket is created with the umask applied; restrict it before anyone can connect.
        let previous = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(previous)
        guard bound == 0 else { throw Failure(description: "admin.socket: bind \(path): \(String(cString: strerror(errno)))") }
        chmod(path, 0o600)
        guard listen(fd, 64) == 0 else { throw Failure(description: "admin.socket: listen: \(String(cString: strerror(errno)))") }
    }

    /// Listens on a loopback TCP address (`127.0.0.1` or `::1`).
    init(host: String, port: Int, field: String) throws {
        name = host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
        unixPath = nil
        let v6 = host.contains(":")
        fd = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "\(field): socket(): \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var result: Int32
        if v6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(port).bigEndian
            inet_pton(AF_INET6, host, &address.sin6_addr)
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(port).bigEndian
            inet_pton(AF_INET, host, &address.sin_addr)
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        guard result == 0 else { throw Failure(description: "\(field): bind \(name): \(String(cString: strerror(errno)))") }
        guard listen(fd, 64) == 0 else { throw Failure(description: "\(field): listen: \(String(cString: strerror(errno)))") }
    }

    /// Accepts connections on a background thread and answers each with `handler`.
    /// On the unix socket, a peer running as another user than petreld (or root)
    /// is refused even if the socket's mode was loosened.
    func start(_ handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse) {
        let fd = self.fd
        let checkPeer = unixPath != nil
        Thread.detachNewThread {
            while true {
                let connection = accept(fd, nil, nil)
                if connection < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    if errno == EMFILE || errno == ENFILE { usleep(100_000); continue }  // out of fds: wait, don't spin
                    return  // the listener was shut down
                }
                if checkPeer, let uid = HTTPListener.peerUID(connection), uid != 0, uid != geteuid() {
                    Thread.detachNewThread {
                        HTTPListener.serve(connection) { _ in AdminAPI.error(403, "the admin API serves root and petreld's own user only (peer uid \(uid))") }
                    }
                    continue
                }
                Thread.detachNewThread { HTTPListener.serve(connection, handler) }
            }
        }
    }

    /// The user id of the process at the other end of a unix socket (SO_PEERCRED).
    private static func peerUID(_ fd: Int32) -> UInt32? {
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
        var credentials = (pid: Int32(0), uid: UInt32(0), gid: UInt32(0))
        var length = socklen_t(MemoryLayout.size(ofValue: credentials))
        let soPeerCredentials: Int32 = 17  // SO_PEERCRED, not exported by Swift's Glibc module
        guard getsockopt(fd, SOL_SOCKET, soPeerCredentials, &credentials, &length) == 0 else { return nil }
        return credentials.uid
    }

    /// Stops accepting and removes the unix socket file.
    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        if let unixPath { unlink(unixPath) }
    }

    private static func serve(_ fd: Int32, _ handler: (HTTPRequest) -> HTTPResponse) {
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var received = Data()
        var buffer = [UInt8](repeating: 0, count: 16_384)
        var response: HTTPResponse?
        while response == nil {
            let n = read(fd, &buffer, buffer.count)
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return }
            received.append(buffer, count: n)
            switch HTTPRequest.parse(received) {
            case .incomplete: continue
            case .malformed(let why): response = AdminAPI.error(400, "request: \(why)")
            case .complete(let request): response = handler(request)
            }
        }
        let bytes = response!.serialized()
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return }
            sent += n
        }
    }
}
