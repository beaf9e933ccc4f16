import CNetlink
import Glibc
import Petrel

/// Finds the MAC of the next-hop router in the kernel's neighbour table, over
/// rtnetlink: one path for IPv4 (ARP) and IPv6 (NDP), in the calling thread's
/// network namespace.
public enum NextHopResolver {
    /// Why the gateway has no MAC; the description names `next_hop.gateway`.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The gateway's MAC. If the neighbour table has no usable entry, asks the kernel
    /// to resolve it (as a packet to it would) and waits at most `timeout` seconds.
    /// The gateway must be on a directly connected network.
    public static func resolve(_ gateway: IPAddress, timeout: Double = 3) throws -> MACAddress {
        let netlink = try RouteNetlink()
        let interface = try directlyConnectedInterface(for: gateway, netlink)
        let deadline = now() + timeout
        var nextSolicitation = 0.0
        while true {
            if let mac = try neighbour(gateway, interface: interface, netlink) { return mac }
            guard now() < deadline else { break }
            if now() >= nextSolicitation {
                try solicit(gateway, interface: interface, netlink)
                nextSolicitation = now() + 1
            }
            usleep(20_000)
        }
        throw Failure(description: "next_hop.gateway: \(gateway) did not answer \(gateway.family == .ipv4 ? "ARP" : "neighbour solicitation") "
            + "on \(name(of: interface)) within \(timeout) s (is it up? or give next_hop.mac)")
    }

    // MARK: rtnetlink requests

    /// The interface index of the route to `gateway`, which must lead to it directly.
    private static func directlyConnectedInterface(for gateway: IPAddress, _ netlink: RouteNetlink) throws -> Int32 {
        var header: [UInt8] = [family(of: gateway), UInt8(gateway.bytes.count * 8), 0, 0, 0, 0, 0, 0]
        header.append(UInt32(0))  // rtm_flags
        let answers: [NetlinkMessage]
        do {
            answers = try netlink.request("route lookup for \(gateway)", type: Int(RTM_GETROUTE), header: header,
                                          attributes: [(Int(RTA_DST.rawValue), gateway.bytes)])
        } catch {
            throw Failure(description: "next_hop.gateway: no route to \(gateway) (\(error))")
        }
        guard let route = answers.first(where: { $0.type == Int(RTM_NEWROUTE) }), route.payload.count >= MemoryLayout<rtmsg>.size else {
            throw Failure(description: "next_hop.gateway: the kernel gave no route to \(gateway)")
        }
        let type = Int(route.payload[7])
        let attributes = route.attributes(after: MemoryLayout<rtmsg>.size)
        guard type != Int(RTN_LOCAL) else {
            throw Failure(description: "next_hop.gateway: \(gateway) is an address of this host, not a router")
        }
        if let via = attributes[Int(RTA_GATEWAY.rawValue)] {
            throw Failure(description: "next_hop.gateway: \(gateway) is not on a directly connected network (it is routed via \(address(via)))")
        }
        guard type == Int(RTN_UNICAST), let oif = attributes[Int(RTA_OIF.rawValue)], oif.count == 4 else {
            throw Failure(description: "next_hop.gateway: no usable route to \(gateway) (route type \(type))")
        }
        return oif.load(Int32.self, at: 0)
    }

    /// The neighbour entry's MAC, if the entry is usable (resolved, or static).
    private static func neighbour(_ gateway: IPAddress, interface: Int32, _ netlink: RouteNetlink) throws -> MACAddress? {
        let answers: [NetlinkMessage]
        do {
            answers = try netlink.request("neighbour lookup for \(gateway)", type: Int(RTM_GETNEIGH),
                                          header: neighbourHeader(gateway, interface: interface),
                                          attributes: [(Int(NDA_DST), gateway.bytes)])
        } catch {
            // No entry yet is the normal answer before the first solicitation.
            if error.errno == ENOENT { return nil }
            throw error
        }
        guard let entry = answers.first(where: { $0.type == Int(RTM_NEWNEIGH) }), entry.payload.count >= MemoryLayout<ndmsg>.size else {
            return nil
        }
        let state = Int32(entry.payload.load(UInt16.self, at: 8))
        let usable = Int32(NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY)
        guard state & usable != 0, let mac = entry.attributes(after: MemoryLayout<ndmsg>.size)[Int(NDA_LLADDR)],
              let address = MACAddress(bytes: mac), !address.isZero else { return nil }
        return address
    }

    /// Asks the kernel to resolve the gateway (NTF_USE: as if a packet were waiting for it),
    /// creating the entry if needed. No packet leaves this process.
    private static func solicit(_ gateway: IPAddress, interface: Int32, _ netlink: RouteNetlink) throws {
        do {
            _ = try netlink.request("neighbour solicitation for \(gateway)", type: Int(RTM_NEWNEIGH), flags: Int32(NLM_F_CREATE),
                                    header: neighbourHeader(gateway, interface: interface, flags: UInt8(NTF_USE)),
                                    attributes: [(Int(NDA_DST), gateway.bytes)])
        } catch {
            throw Failure(description: "next_hop.gateway: cannot ask the kernel to resolve \(gateway) (\(error); petreld needs CAP_NET_ADMIN)")
        }
    }

    /// An ndmsg: family, padding, interface index, state, flags, type.
    private static func neighbourHeader(_ gateway: IPAddress, interface: Int32, flags: UInt8 = 0) -> [UInt8] {
        var header: [UInt8] = [family(of: gateway), 0, 0, 0]
        header.append(interface)
        header.append(UInt16(0))
        header += [flags, 0]
        return header
    }

    // MARK: Pieces

    private static func family(of address: IPAddress) -> UInt8 { UInt8(address.family == .ipv4 ? AF_INET : AF_INET6) }

    private static func address(_ bytes: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = bytes.withUnsafeBytes { inet_ntop(bytes.count == 4 ? AF_INET : AF_INET6, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        return String(cString: buffer)
    }

    private static func name(of interface: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(IF_NAMESIZE))
        guard if_indextoname(UInt32(interface), &buffer) != nil else { return "interface \(interface)" }
        return String(cString: buffer)
    }

    private static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
