import Foundation
import Glibc
import Petrel

/// Finds the MAC of the next-hop router from the kernel's neighbour table.
enum NextHopResolver {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Sends a datagram to the gateway's discard port (so the kernel resolves it),
    /// then polls the neighbour table until the entry is complete or `timeout` passes.
    static func resolve(_ gateway: IPAddress, timeout: TimeInterval = 3) throws -> [UInt8] {
        let deadline = Date().addingTimeInterval(timeout)
        var lastProbe = Date.distantPast
        while Date() < deadline {
            if Date().timeIntervalSince(lastProbe) >= 1 {
                probe(gateway)
                lastProbe = Date()
            }
            if let mac = lookup(gateway) { return mac }
            usleep(100_000)
        }
        throw Failure(description: "next_hop.gateway: no neighbour entry for \(gateway) after \(Int(timeout)) s "
            + "(is it on a directly connected network and up? or give next_hop.mac)")
    }

    /// A UDP datagram to port 9 (discard): its only purpose is the ARP/NDP request it causes.
    private static func probe(_ gateway: IPAddress) {
        let family = gateway.family == .ipv4 ? AF_INET : AF_INET6
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let payload: [UInt8] = [0]
        if gateway.family == .ipv4 {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(9).bigEndian
            withUnsafeMutableBytes(of: &address.sin_addr) { $0.copyBytes(from: gateway.bytes) }
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, payload, payload.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        } else {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = in_port_t(9).bigEndian
            withUnsafeMutableBytes(of: &address.sin6_addr) { $0.copyBytes(from: gateway.bytes) }
            _ = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, payload, payload.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_in6>.size))
                }
            }
        }
    }

    /// The complete neighbour entry's MAC, if there is one.
    static func lookup(_ gateway: IPAddress) -> [UInt8]? {
        if gateway.family == .ipv4 {
            // IP address  HW type  Flags  HW address  Mask  Device; flag 0x2 is "complete".
            guard let table = try? String(contentsOfFile: "/proc/net/arp", encoding: .utf8) else { return nil }
            for line in table.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                guard fields.count >= 4, IPAddress(String(fields[0])) == gateway,
                      let flags = Int(fields[2].dropFirst(2), radix: 16), flags & 0x2 != 0,
                      let mac = MACAddress.parse(String(fields[3])), mac != [0, 0, 0, 0, 0, 0] else { continue }
                return mac
            }
            return nil
        }
        // `ip -6 neigh show ADDR`: "fd50:0:2::1 dev eth0 lladdr 02:00:00:00:02:01 REACHABLE"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        if !FileManager.default.isExecutableFile(atPath: "/usr/sbin/ip") { process.executableURL = URL(fileURLWithPath: "/sbin/ip") }
        process.arguments = ["-6", "neigh", "show", "\(gateway)"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            guard let index = fields.firstIndex(of: "lladdr"), index + 1 < fields.count,
                  !line.contains("FAILED"), !line.contains("INCOMPLETE"),
                  let mac = MACAddress.parse(fields[index + 1]) else { continue }
            return mac
        }
        return nil
    }
}
