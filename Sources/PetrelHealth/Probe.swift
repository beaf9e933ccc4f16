import Foundation
import Glibc
import Petrel

/// One probe in flight: a nonblocking socket towards the VIP and the step it is
/// at. The owner polls `fd` for `events`, calls `advance` when it is ready, and
/// closes the probe once a result is known. A probe holds exactly one fd.
final class Probe {
    enum Stage { case connecting, sending, receiving }

    let target: HealthTarget
    /// Monotonic nanoseconds after which the probe has timed out.
    let deadline: UInt64
    private(set) var fd: Int32 = -1
    private var stage = Stage.connecting
    private var request: [UInt8] = []
    private var sent = 0
    private var response: [UInt8] = []

    /// The most of an HTTP answer read while looking for its status line.
    static let maxStatusLineBytes = 4096

    /// Opens the socket, marks it (so the data plane forwards it to the real) and
    /// starts connecting. A result is returned at once when the kernel refuses.
    init(target: HealthTarget, now: UInt64) {
        self.target = target
        deadline = now + UInt64(target.check.timeoutMilliseconds) * 1_000_000
        if case .http(let http) = target.check.kind { request = Probe.httpRequest(http, target: target) }
        if case .udp(let udp) = target.check.kind { request = udp.payload }
    }

    deinit { close() }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Creates and connects the socket; nil while the probe goes on, else its result.
    func start(mark: UInt32?) -> ProbeResult? {
        let datagram = if case .udp = target.check.kind { true } else { false }
        let family = target.vip.address.family == .ipv4 ? AF_INET : AF_INET6
        let kind = Int32(datagram ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        fd = socket(family, kind, 0)
        guard fd >= 0 else { return .failed(.error("socket: \(Probe.errnoName(errno))")) }
        if var mark {
            guard setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, socklen_t(MemoryLayout<UInt32>.size)) == 0 else {
                return .failed(.error("SO_MARK: \(Probe.errnoName(errno))"))
            }
        }
        if !datagram {
            // Close with a reset: a probe leaves no TIME_WAIT behind, so a check storm cannot use up ports.
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        }
        let result = Probe.withSocketAddress(target.vip.address, port: target.port) { connect(fd, $0, $1) }
        if result != 0 && errno != EINPROGRESS { return .failed(Probe.failure(errno)) }
        if datagram {
            stage = .sending
            return advance(revents: Int16(POLLOUT))
        }
        return nil
    }

    /// What to poll for now.
    var events: Int16 {
        switch stage {
        case .connecting, .sending: Int16(POLLOUT)
        case .receiving: Int16(POLLIN)
        }
    }

    /// Moves on after poll reported `revents`; returns the result once known.
    func advance(revents: Int16) -> ProbeResult? {
        switch stage {
        case .connecting:
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error != 0 { return .failed(Probe.failure(error)) }
            guard revents & Int16(POLLOUT) != 0 else { return nil }
            if case .tcp = target.check.kind { return .passed("connected") }
            stage = .sending
            return send()
        case .sending:
            return send()
        case .receiving:
            return receive()
        }
    }

    private func send() -> ProbeResult? {
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { return nil }
                return .failed(Probe.failure(errno))
            }
            sent += n
        }
        stage = .receiving
        return nil
    }

    private func receive() -> ProbeResult? {
        var buffer = [UInt8](repeating: 0, count: 2048)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK { return nil }
            return .failed(Probe.failure(errno))
        }
        guard case .http(let http) = target.check.kind else { return .passed("reply of \(n) bytes") }
        response += buffer[..<n]
        if let end = response.firstIndex(of: UInt8(ascii: "\n")) {
            return Probe.judge(statusLine: response[..<end], expected: http.expectedStatus)
        }
        if n == 0 { return .failed(.badResponse(response.isEmpty ? "closed without an answer" : "closed before the end of the status line")) }
        if response.count > Probe.maxStatusLineBytes { return .failed(.badResponse("no status line in \(response.count) bytes")) }
        return nil
    }

    // MARK: Pieces

    static func httpRequest(_ http: HealthCheck.HTTP, target: HealthTarget) -> [UInt8] {
        let host = http.host ?? {
            let address = target.vip.address.family == .ipv6 ? "[\(target.vip.address)]" : "\(target.vip.address)"
            return target.port == 80 ? address : "\(address):\(target.port)"
        }()
        return Array("GET \(http.path) HTTP/1.0\r\nHost: \(host)\r\nUser-Agent: petrel-health-check\r\nConnection: close\r\n\r\n".utf8)
    }

    /// `HTTP/1.1 200 OK` -> passed when 200 is expected.
    static func judge(statusLine: ArraySlice<UInt8>, expected: [Int]) -> ProbeResult {
        let text = String(decoding: statusLine, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = text.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let code = Int(parts[1]), (100...599).contains(code) else {
            return .failed(.badResponse("not an HTTP status line: \(text.prefix(40))"))
        }
        return expected.contains(code) ? .passed("HTTP \(code)") : .failed(.httpStatus(code))
    }

    static func failure(_ code: Int32) -> ProbeResult.Failure {
        switch code {
        case ECONNREFUSED: .refused
        case EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL: .unreachable
        case ECONNRESET, EPIPE: .reset
        case ETIMEDOUT: .timeout
        default: .error(errnoName(code))
        }
    }

    static func errnoName(_ code: Int32) -> String { String(cString: strerror(code)) }

    static func withSocketAddress<T>(_ address: IPAddress, port: UInt16, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        let bytes = address.bytes
        switch address.family {
        case .ipv4:
            var socketAddress = sockaddr_in()
            socketAddress.sin_family = sa_family_t(AF_INET)
            socketAddress.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &socketAddress.sin_addr) { $0.copyBytes(from: bytes) }
            return withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        case .ipv6:
            var socketAddress = sockaddr_in6()
            socketAddress.sin6_family = sa_family_t(AF_INET6)
            socketAddress.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &socketAddress.sin6_addr) { $0.copyBytes(from: bytes) }
            return withUnsafePointer(to: &socketAddress) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        }
    }
}
