import Petrel
import PetrelTestSupport

/// The VIPs, reals and packets every data-plane measurement uses.
enum BenchPlan {
    static func ip(_ text: String) -> IPAddress { IPAddress(text)! }

    static let clientMAC = PacketBuilder.clientMAC
    static let balancerMAC = PacketBuilder.balancerMAC
    static let nextHopMAC = MACAddress(0x02, 0, 0, 0, 0x02, 0x01)

    static let realsPerVip = 16
    static let reals4 = (1...realsPerVip).map { Real(address: ip("198.18.3.\($0)")) }
    static let reals6 = (1...realsPerVip).map { Real(address: ip("fd50:0:3::\(String($0, radix: 16))")) }

    static let web4 = VipKey(address: ip("198.18.100.1"), port: 80, proto: .tcp)
    static let dns4 = VipKey(address: ip("198.18.100.1"), port: 53, proto: .udp)
    static let web6 = VipKey(address: ip("fd50:0:100::1"), port: 80, proto: .tcp)
    static let web4in6 = VipKey(address: ip("198.18.100.2"), port: 80, proto: .tcp)
    static let bypass4 = VipKey(address: ip("198.18.100.3"), port: 80, proto: .tcp)
    static let wildcard4 = VipKey(address: ip("198.18.100.4"), port: 0, proto: .tcp)
    static let gue4 = VipKey(address: ip("198.18.100.5"), port: 80, proto: .tcp)
    static let quic4 = VipKey(address: ip("198.18.100.6"), port: 443, proto: .udp)
    static let routed4 = VipKey(address: ip("198.18.100.7"), port: 80, proto: .tcp)
    /// Reals reached by GUE, and QUIC reals with server ids 1...16 (their own addresses:
    /// a real is reached one way by every VIP).
    static let realsGUE4 = (1...realsPerVip).map { Real(address: ip("198.18.5.\($0)"), encapsulation: .gue) }
    static let realsQuic4 = (1...realsPerVip).map { Real(address: ip("198.18.6.\($0)"), quicServerId: UInt16($0)) }

    static let vips: [Vip] = [
        Vip(key: web4, reals: reals4),
        Vip(key: dns4, reals: reals4),
        Vip(key: web6, reals: reals6),
        Vip(key: web4in6, reals: reals6),
        Vip(key: bypass4, flags: .lruBypass, reals: reals4),
        Vip(key: wildcard4, reals: reals4),
        Vip(key: gue4, reals: realsGUE4),
        Vip(key: quic4, flags: .quic, reals: realsQuic4),
        Vip(key: routed4, reals: reals4, sourceRoutes: sourceRoutes4),
    ]

    /// 1,024 routes on one VIP, as a site with many client networks might have: a /24
    /// per 198.18.x.0 and a /16 around them, nested so the lookup walks the trie.
    static let sourceRoutes4: [SourceRoute] = [SourceRoute(prefix: IPPrefix("198.18.0.0/16")!, real: reals4[0].address)]
        + (0..<256).map { SourceRoute(prefix: IPPrefix(address: .v4(198, 18, UInt8($0), 0), length: 24), real: reals4[$0 % realsPerVip].address) }
        + (0..<767).map { SourceRoute(prefix: IPPrefix(address: .v4(10, UInt8($0 / 256), UInt8($0 % 256), 0), length: 24), real: reals4[$0 % realsPerVip].address) }

    static var realCount: Int { Set(vips.flatMap { $0.reals.map(\.address) }).count }

    static let limits = DataPlaneLimits(maxVips: 16, maxReals: 256, ringSize: 65537, connectionTableSize: 65536)

    static let client4 = ip("198.18.1.2")
    static let client6 = ip("fd50:0:1::2")

    /// Payload bytes after the L4 header: an IPv4 TCP frame is then 64 bytes.
    static let payload = [UInt8](repeating: 0x61, count: 10)

    static func frame(_ proto: L4Protocol, from source: IPAddress, port sourcePort: UInt16, to destination: IPAddress, port destinationPort: UInt16,
                      tcpFlags: UInt8 = PacketBuilder.TCPFlags.ack) -> [UInt8] {
        let flow = Flow(proto: proto, source: source, sourcePort: sourcePort, destination: destination, destinationPort: destinationPort)
        return PacketBuilder.frame(for: flow, tcpFlags: tcpFlags, payload: payload)
    }

    static let ack = PacketBuilder.TCPFlags.ack
    static let syn = PacketBuilder.TCPFlags.syn

    // MARK: Scenarios

    /// The SYN-flood guard is off, so that every SYN of the SYN scenario is written
    /// to the table; `ipv4_tcp_syn_flood` turns it on.
    static let forwarding = ForwardingSettings(interfaceMAC: MACAddress(bytes: balancerMAC)!, nextHopMAC: nextHopMAC, mtu: 1500, synFloodThreshold: 0)

    static let scenarios: [PacketScenario] = {
        var list: [PacketScenario] = []
        func hit(_ name: String, _ description: String, _ proto: L4Protocol, _ source: IPAddress, _ port: UInt16, _ vip: IPAddress, _ vipPort: UInt16) {
            let packet = frame(proto, from: source, port: port, to: vip, port: vipPort)
            let primer = proto == .tcp ? frame(proto, from: source, port: port, to: vip, port: vipPort, tcpFlags: syn) : packet
            list.append(PacketScenario(name: name, description: description, packet: packet, primer: primer,
                                       expectedAction: .tx, expectedCounters: [.rx, .forward, .eventConnectionHit, .eventFlowCacheHit]))
        }
        hit("ipv4_tcp_conn_hit", "IPv4 TCP, established flow: per-CPU connection-table hit, 4in4",
            .tcp, client4, 40001, web4.address, 80)
        list.append(PacketScenario(
            name: "ipv4_tcp_new_flow_lru_bypass", description: "IPv4 TCP to a VIP with lru_bypass: Maglev ring lookup on every packet, 4in4",
            packet: frame(.tcp, from: client4, port: 40002, to: bypass4.address, port: 80), primer: nil,
            expectedAction: .tx, expectedCounters: [.rx, .forward, .eventNewConnection]))
        list.append(PacketScenario(
            name: "ipv4_tcp_syn_new_flow", description: "IPv4 TCP SYN: ring lookup plus its write to the shared connection table, 4in4",
            packet: frame(.tcp, from: client4, port: 40003, to: web4.address, port: 80, tcpFlags: syn), primer: nil,
            expectedAction: .tx, expectedCounters: [.rx, .forward, .eventNewConnection],
            remembered: Flow(proto: .tcp, source: client4, sourcePort: 40003, destination: web4.address, destinationPort: 80)))
        list.append(PacketScenario(
            name: "ipv4_tcp_syn_source_routed", description: "IPv4 TCP SYN to a VIP with 1,024 source routes: its client's /24 names the real (LPM trie lookup instead of the ring), table writes, 4in4",
            packet: frame(.tcp, from: client4, port: 40012, to: routed4.address, port: 80, tcpFlags: syn), primer: nil,
            expectedAction: .tx, expectedCounters: [.rx, .forward, .eventNewConnection, .eventSourceRouted],
            remembered: Flow(proto: .tcp, source: client4, sourcePort: 40012, destination: routed4.address, destinationPort: 80)))
        list.append(PacketScenario(
            name: "ipv4_tcp_syn_flood", description: "IPv4 TCP SYN at flood rate: the SYN-flood guard (threshold 1 a second) forwards by the ring without a table write, 4in4",
            packet: frame(.tcp, from: client4, port: 40010, to: web4.address, port: 80, tcpFlags: syn), primer: nil,
            expectedAction: .tx, expectedCounters: [.rx, .forward, .eventNewConnection, .eventSynFlood], synFloodThreshold: 1))
        hit("ipv6_tcp_conn_hit", "IPv6 TCP, established flow: connection-table hit, 6in6",
            .tcp, client6, 40004, web6.address, 80)
        hit("ipv4_in_ipv6_conn_hit", "IPv4 TCP to a VIP with IPv6 reals: connection-table hit, 4in6",
            .tcp, client4, 40005, web4in6.address, 80)
        hit("ipv4_udp_conn_hit", "IPv4 UDP, known flow: connection-table hit, 4in4",
            .udp, client4, 40006, dns4.address, 53)
        hit("ipv4_port_wildcard_conn_hit", "IPv4 TCP to a port-wildcard VIP (second VIP lookup), connection-table hit, 4in4",
            .tcp, client4, 40007, wildcard4.address, 8443)
        list.append(PacketScenario(
            name: "ipv4_tcp_gue_conn_hit", description: "IPv4 TCP, established flow to a real reached by GUE: connection-table hit, 4in4 in UDP",
            packet: frame(.tcp, from: client4, port: 40010, to: gue4.address, port: 80),
            primer: frame(.tcp, from: client4, port: 40010, to: gue4.address, port: 80, tcpFlags: syn),
            expectedAction: .tx, expectedCounters: [.rx, .forward, .eventConnectionHit, .eventFlowCacheHit, .eventGUEForward]))
        list.append(PacketScenario(
            name: "ipv4_quic_short_header", description: "QUIC short header whose connection ID names server id 7: sent to that real, no table lookup, 4in4",
            packet: quicShortHeader(from: client4, port: 40011, serverId: 7), primer: nil,
            expectedAction: .tx, expectedCounters: [.rx, .forward, .eventQuicCIDRouted]))
        // Capture on: the first scenario again while a capture runs. Capture off costs one
        // check, so ipv4_tcp_conn_hit itself is the "off" figure.
        var otherVip = CaptureFilter()
        otherVip.vip = dns4
        var captured = list[0]
        captured.capture = otherVip
        list.append(PacketScenario(
            name: "ipv4_tcp_conn_hit_capture_other_vip",
            description: "as ipv4_tcp_conn_hit while a capture of another VIP runs: the packet is copied aside and checked, not recorded",
            packet: captured.packet, primer: captured.primer, expectedAction: .tx, expectedCounters: captured.expectedCounters,
            capture: otherVip, captureSelects: false))
        var thisVip = CaptureFilter()
        thisVip.vip = web4
        list.append(PacketScenario(
            name: "ipv4_tcp_conn_hit_captured",
            description: "as ipv4_tcp_conn_hit while a capture of its VIP runs: every packet recorded (as received) to the ring buffer",
            packet: captured.packet, primer: captured.primer, expectedAction: .tx, expectedCounters: captured.expectedCounters,
            capture: thisVip, captureSelects: true))
        list.append(PacketScenario(
            name: "ipv4_not_vip_pass", description: "IPv4 TCP to an address that is no VIP: parsed, one read of the VIP address filter, XDP_PASS",
            packet: frame(.tcp, from: client4, port: 40008, to: ip("198.18.200.1"), port: 80), primer: nil,
            expectedAction: .pass, expectedCounters: [.rx, .passNotVip]))
        list.append(PacketScenario(
            name: "ipv4_malformed_drop", description: "IPv4 whose total length runs past the frame: dropped as malformed",
            packet: malformed(frame(.tcp, from: client4, port: 40009, to: web4.address, port: 80)), primer: nil,
            expectedAction: .drop, expectedCounters: [.rx, .dropMalformed]))
        return list
    }()

    /// A UDP frame to the QUIC VIP: a short header (first byte 0x40) with a Petrel
    /// CID format v1 connection ID for `serverId`, 10 bytes of payload after it.
    static func quicShortHeader(from source: IPAddress, port: UInt16, serverId: UInt16) -> [UInt8] {
        let flow = Flow(proto: .udp, source: source, sourcePort: port, destination: quic4.address, destinationPort: quic4.port)
        return PacketBuilder.frame(for: flow, payload: [0x40] + QuicConnectionID.make(serverId: serverId, nonce: [1, 2, 3, 4, 5]) + payload)
    }

    /// The same frame with an IPv4 total length 100 bytes longer than what follows.
    static func malformed(_ frame: [UInt8]) -> [UInt8] {
        var bytes = frame
        let length = (UInt16(bytes[16]) << 8 | UInt16(bytes[17])) + 100
        bytes[16] = UInt8(length >> 8)
        bytes[17] = UInt8(length & 0xff)
        return bytes
    }
}

/// XDP verdicts, as the programs return them.
enum XDPAction: UInt32, CustomStringConvertible {
    case aborted = 0, drop, pass, tx, redirect

    var description: String {
        switch self {
        case .aborted: "XDP_ABORTED"
        case .drop: "XDP_DROP"
        case .pass: "XDP_PASS"
        case .tx: "XDP_TX"
        case .redirect: "XDP_REDIRECT"
        }
    }
}

/// One kind of packet whose cost is measured.
struct PacketScenario {
    let name: String
    let description: String
    let packet: [UInt8]
    /// Run once before measuring (the SYN, or the first datagram) so the measured
    /// packets find their flow in the connection table.
    let primer: [UInt8]?
    let expectedAction: XDPAction
    /// Each must grow by exactly the repetitions in every measured run.
    let expectedCounters: [StatReason]
    /// A new decision the run must leave in the shared connection table: after every
    /// round, `explain` must name the real the last packet went to.
    var remembered: Flow? = nil
    /// Set for the run of this scenario only (nil: BenchPlan.forwarding's).
    var synFloodThreshold: UInt32? = nil
    /// A packet capture running while this scenario is measured (`petrel capture`), and whether
    /// it selects the packet: then its `matched` counter, and `recorded` + `lost`, must grow by
    /// the repeat count; else `matched` must not grow.
    var capture: CaptureFilter? = nil
    var captureSelects = false

    /// The balancer rewrites the packet it forwards: such packets are measured
    /// through the restore wrapper, the others directly.
    var modifiesPacket: Bool { expectedAction == .tx }
}
