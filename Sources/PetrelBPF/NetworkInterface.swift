import CBPFSupport
import CLibBPF
import Glibc

/// A network interface in the calling thread's network namespace.
public struct NetworkInterface: Sendable {
    public let name: String
    public let index: UInt32

    /// Finds the interface by name; throws ENODEV with a clear message if absent.
    public init(named name: String) throws(BPFError) {
        let index = if_nametoindex(name)
        guard index != 0 else { throw BPFError("find network interface '\(name)'", errno: ENODEV) }
        self.name = name
        self.index = index
    }

    /// The interface's hardware address (6 bytes).
    public func macAddress() throws(BPFError) -> [UInt8] {
        var request = try self.request(SIOCGIFHWADDR, "read MAC address")
        return withUnsafeBytes(of: &request.ifr_ifru.ifru_hwaddr.sa_data) { Array($0.prefix(6)) }
    }

    /// The interface's MTU: the largest IP packet it carries.
    public func mtu() throws(BPFError) -> Int {
        Int(try request(SIOCGIFMTU, "read MTU").ifr_ifru.ifru_mtu)
    }

    /// Whether the interface is administratively up.
    public func isUp() throws(BPFError) -> Bool {
        (Int32(try request(SIOCGIFFLAGS, "read flags").ifr_ifru.ifru_flags) & Int32(IFF_UP)) != 0
    }

    private func request(_ command: Int32, _ what: String) throws(BPFError) -> ifreq {
        let sock = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if sock < 0 { throw BPFError("\(what) of '\(name)': open socket", errno: Glibc.errno) }
        defer { close(sock) }
        var request = ifreq()
        withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { raw in
            let bytes = Array(name.utf8.prefix(Int(IFNAMSIZ) - 1))
            raw.copyBytes(from: bytes)
        }
        if ioctl(sock, UInt(command), &request) != 0 {
            throw BPFError("\(what) of '\(name)'", errno: Glibc.errno)
        }
        return request
    }
}

/// Runs code inside another network namespace (by name, as `ip netns` creates
/// them). Only the calling thread moves, and it moves back afterwards.
public enum NetworkNamespace {
    public static func run<T>(_ name: String, _ body: () throws -> T) throws -> T {
        let original = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        if original < 0 { throw BPFError("open current network namespace", errno: Glibc.errno) }
        defer { close(original) }
        let target = open("/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
        if target < 0 { throw BPFError("open network namespace '\(name)'", errno: Glibc.errno) }
        defer { close(target) }
        if petrel_enter_network_namespace(target) != 0 { throw BPFError("enter network namespace '\(name)'", errno: Glibc.errno) }
        defer {
            if petrel_enter_network_namespace(original) != 0 { fatalError("cannot return from network namespace '\(name)'") }
        }
        return try body()
    }
}
