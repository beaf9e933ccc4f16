import CLibBPF
import Glibc

/// A failed libbpf, libxdp or kernel call: what was attempted, the errno, and
/// whatever libbpf printed meanwhile (for a load failure, the verifier log).
public struct BPFError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let errno: Int32
    public let log: String

    public init(_ operation: String, errno: Int32, log: String = "") {
        self.operation = operation
        self.errno = errno < 0 ? -errno : errno
        self.log = log
    }

    /// The errno's name and text, e.g. "EPERM (Operation not permitted)".
    public var reason: String { String(cString: strerror(errno)) }

    public var description: String {
        var text = "\(operation) failed: \(reason) (errno \(errno))"
        if !log.isEmpty { text += "\n" + log }
        return text
    }
}

/// Runs a libbpf-style call that returns 0 or a negative errno (or -1 with errno set).
@discardableResult
func check(_ operation: @autoclosure () -> String, _ result: Int32) throws(BPFError) -> Int32 {
    guard result < 0 else { return result }
    let code = result == -1 ? Glibc.errno : -result
    throw BPFError(operation(), errno: code)
}
