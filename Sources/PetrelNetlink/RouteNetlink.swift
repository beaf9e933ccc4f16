import CNetlink
import Glibc

/// A kernel refusal or a socket failure on the rtnetlink socket.
public struct NetlinkError: Error, Equatable, CustomStringConvertible {
    /// What was asked, like "route lookup".
    public var operation: String
    public var errno: Int32

    public var description: String { "\(operation): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// One rtnetlink message: its type and the bytes after the header.
struct NetlinkMessage {
    var type: Int
    var payload: [UInt8]

    /// The attributes after a fixed-size header of `headerSize` bytes, by type.
    func attributes(after headerSize: Int) -> [Int: [UInt8]] {
        var result: [Int: [UInt8]] = [:]
        var offset = align(headerSize)
        while offset + MemoryLayout<rtattr>.size <= payload.count {
            let length = Int(payload.load(UInt16.self, at: offset))
            // The top two bits are the nested and byte-order flags (NLA_TYPE_MASK).
            let type = Int(payload.load(UInt16.self, at: offset + 2) & 0x3fff)
            guard length >= MemoryLayout<rtattr>.size, offset + length <= payload.count else { break }
            result[type] = Array(payload[(offset + MemoryLayout<rtattr>.size)..<(offset + length)])
            offset += align(length)
        }
        return result
    }
}

/// A NETLINK_ROUTE socket of the calling thread's network namespace: a request,
/// then its answers. Just enough for route lookups and the neighbour table.
final class RouteNetlink {
    private let fd: Int32
    private var sequence: UInt32 = 0

    init() throws(NetlinkError) {
        fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_ROUTE)
        guard fd >= 0 else { throw NetlinkError(operation: "opening a netlink socket", errno: errno) }
        // Every answer comes at once; a kernel that stays silent for a second is not answering.
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    /// Sends a request (`header` is the fixed message header, `attributes` by type) and
    /// returns the answers; a refusal is thrown. Without `dump` the kernel acknowledges.
    func request(_ operation: String, type: Int, flags: Int32 = 0, dump: Bool = false,
                 header: [UInt8], attributes: [(Int, [UInt8])] = []) throws(NetlinkError) -> [NetlinkMessage] {
        sequence &+= 1
        var body = header
        body.pad()
        for (type, value) in attributes {
            body.append(UInt16(MemoryLayout<rtattr>.size + value.count))
            body.append(UInt16(type))
            body += value
            body.pad()
        }
        var message: [UInt8] = []
        message.append(UInt32(MemoryLayout<nlmsghdr>.size + body.count))
        message.append(UInt16(type))
        message.append(UInt16(Int32(NLM_F_REQUEST) | flags | (dump ? Int32(NLM_F_DUMP) : Int32(NLM_F_ACK))))
        message.append(sequence)
        message.append(UInt32(0))
        message += body

        var kernel = sockaddr_nl()
        kernel.nl_family = sa_family_t(AF_NETLINK)
        let sent = withUnsafePointer(to: &kernel) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, message, message.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
            }
        }
        guard sent == message.count else { throw NetlinkError(operation: operation, errno: errno) }
        return try receive(operation)
    }

    /// Reads until the kernel's acknowledgement, error or end of dump for the current request.
    private func receive(_ operation: String) throws(NetlinkError) -> [NetlinkMessage] {
        var answers: [NetlinkMessage] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR { continue }
                throw NetlinkError(operation: operation, errno: errno == EAGAIN ? ETIMEDOUT : errno)
            }
            var offset = 0
            while offset + MemoryLayout<nlmsghdr>.size <= count {
                let length = Int(buffer.load(UInt32.self, at: offset))
                let type = Int(buffer.load(UInt16.self, at: offset + 4))
                let sequence = buffer.load(UInt32.self, at: offset + 8)
                guard length >= MemoryLayout<nlmsghdr>.size, offset + length <= count else { break }
                let payload = Array(buffer[(offset + MemoryLayout<nlmsghdr>.size)..<(offset + length)])
                offset += align(length)
                guard sequence == self.sequence else { continue }  // a late answer to an earlier request
                switch type {
                case Int(NLMSG_DONE):
                    return answers
                case Int(NLMSG_ERROR):
                    // nlmsgerr: a negative errno, or 0 for the acknowledgement.
                    let error = payload.count >= 4 ? -payload.load(Int32.self, at: 0) : EPROTO
                    if error != 0 { throw NetlinkError(operation: operation, errno: error) }
                    return answers
                default:
                    answers.append(NetlinkMessage(type: type, payload: payload))
                }
            }
        }
    }
}

// MARK: Bytes

/// Netlink aligns headers and attributes to 4 bytes.
func align(_ length: Int) -> Int { (length + 3) & ~3 }

extension [UInt8] {
    /// Appends a value in host byte order, as netlink headers are.
    mutating func append<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value) { append(contentsOf: $0) }
    }

    mutating func pad() { append(contentsOf: [UInt8](repeating: 0, count: align(count) - count)) }

    func load<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
    }
}
