import Foundation
import Petrel
import PetrelBPF
import PetrelTestSupport

// Shared set-up for the packet tests: a real balancer loaded in the kernel,
// its maps filled by the library, packets run through BPF_PROG_TEST_RUN.

enum XDPAction: UInt32 {
    case aborted = 0, drop, pass, tx, redirect
}

let interfaceMAC = MACAddress(0x02, 0, 0, 0, 0x02, 0x02)
let nextHopMAC = MACAddress(0x02, 0, 0, 0, 0x02, 0x01)

func ip(_ text: String) -> IPAddress { IPAddress(text)! }

/// The VIPs every packet test starts from.
enum TestVips {
    static let web4 = VipKey(address: ip("198.18.100.1"), port: 80, proto: .tcp)
    static let dns4 = VipKey(address: ip("198.18.100.1"), port: 53, proto: .udp)
    static let web6 = VipKey(address: ip("fd50:0:100::1"), port: 80, proto: .tcp)
    static let any4in6 = VipKey(address: ip("198.18.100.2"), port: 0, proto: .tcp)

    static let reals4 = ["198.18.3.11", "198.18.3.12", "198.18.3.13"].map { Real(address: ip($0)) }
    static let reals6 = ["fd50:0:3::11", "fd50:0:3::12", "fd50:0:3::13"].map { Real(address: ip($0)) }

    static var all: [Vip] {
        [
            Vip(key: web4, reals: reals4),
            Vip(key: dns4, reals: reals4),
            Vip(key: web6, reals: reals6),
            Vip(key: any4in6, reals: reals6),
        ]
    }
}

/// The fixture's small limits (ring_size aside, which makeBalancer may change).
let fixtureLimits = DataPlaneLimits(maxVips: 16, maxReals: 64, ringSize: 65537, connectionTableSize: 4096)

/// A balancer with small limits, forwarding settings and the test VIPs.
func makeBalancer(vips: [Vip] = TestVips.all, mtu: Int = 1500, ringSize: Int = 65537, pinPath: String? = nil) throws -> LoadBalancer {
    var limits = fixtureLimits
    limits.ringSize = ringSize
    let balancer = try LoadBalancer(limits: limits, pinPath: pinPath)
    if !balancer.adoptedPinnedMaps {
        try balancer.configureForwarding(ForwardingSettings(interfaceMAC: interfaceMAC, nextHopMAC: nextHopMAC, mtu: mtu))
    }
    try balancer.apply(vips)
    return balancer
}

extension LoadBalancer {
    func run(_ frame: [UInt8]) throws -> (action: XDPAction, packet: [UInt8]) {
        let result = try program.testRun(packet: frame)
        return (XDPAction(rawValue: result.returnValue) ?? .aborted, result.packet)
    }
}

func randomClient(_ family: AddressFamily, using rng: inout SeededGenerator) -> IPAddress {
    if family == .ipv4 {
        return .v4(198, 18, UInt8.random(in: 1...250, using: &rng), UInt8.random(in: 1...254, using: &rng))
    }
    return .v6(high: 0xfd50_0000_0001_0000, low: UInt64.random(in: 0...UInt64.max, using: &rng))
}

extension IPAddress {
    func withLastByte(_ byte: UInt8) -> IPAddress {
        var bytes = self.bytes
        bytes[bytes.count - 1] = byte
        return IPAddress(wireBytes: bytes)!
    }
}

/// Decodes what the balancer transmitted: L2, the outer header, and the inner packet.
struct EncapsulatedFrame {
    let destinationMAC: MACAddress
    let sourceMAC: MACAddress
    let vlan: UInt16?
    let outerFamily: AddressFamily
    let outer: [UInt8]          // the outer IP header
    let inner: [UInt8]          // everything after it
    let outerSource: IPAddress
    let outerDestination: IPAddress
    let outerProtocol: UInt8    // IPv4 protocol or IPv6 next header

    init?(_ frame: [UInt8]) {
        guard frame.count >= 14 else { return nil }
        destinationMAC = MACAddress(bytes: frame[0..<6])!
        sourceMAC = MACAddress(bytes: frame[6..<12])!
        var offset = 12
        var etherType = UInt16(frame[12]) << 8 | UInt16(frame[13])
        if etherType == PacketBuilder.etherTypeVLAN {
            vlan = UInt16(frame[14]) << 8 | UInt16(frame[15])
            etherType = UInt16(frame[16]) << 8 | UInt16(frame[17])
            offset = 18
        } else {
            vlan = nil
            offset = 14
        }
        if etherType == PacketBuilder.etherTypeIPv4 {
            guard frame.count >= offset + 20 else { return nil }
            outerFamily = .ipv4
            outer = Array(frame[offset..<offset + 20])
            inner = Array(frame[(offset + 20)...])
            outerSource = IPAddress(wireBytes: outer[12..<16])!
            outerDestination = IPAddress(wireBytes: outer[16..<20])!
            outerProtocol = outer[9]
        } else if etherType == PacketBuilder.etherTypeIPv6 {
            guard frame.count >= offset + 40 else { return nil }
            outerFamily = .ipv6
            outer = Array(frame[offset..<offset + 40])
            inner = Array(frame[(offset + 40)...])
            outerSource = IPAddress(wireBytes: outer[8..<24])!
            outerDestination = IPAddress(wireBytes: outer[24..<40])!
            outerProtocol = outer[6]
        } else {
            return nil
        }
    }
}

/// The L3 packet of a frame built by PacketBuilder (after Ethernet and any VLAN tag).
func l3(of frame: [UInt8], vlan: Bool = false) -> [UInt8] { Array(frame[(vlan ? 18 : 14)...]) }

func be16(_ bytes: [UInt8], _ offset: Int) -> UInt16 { UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1]) }

/// `count` random IPv4 TCP flows from random clients to `TestVips.web4` port 80.
func webFlows(_ count: Int, seed: UInt64 = 1) -> [Flow] {
    var rng = SeededGenerator(seed: seed)
    return (0..<count).map { _ in
        Flow(proto: .tcp, source: randomClient(.ipv4, using: &rng), sourcePort: UInt16.random(in: 1024...65535, using: &rng),
             destination: TestVips.web4.address, destinationPort: 80)
    }
}

/// The real a packet of `flow` with TCP `flags` is sent to (its outer destination), or nil unless it was forwarded.
func forwardedDestination(_ balancer: LoadBalancer, _ flow: Flow, flags: UInt8) throws -> IPAddress? {
    let (action, output) = try balancer.run(PacketBuilder.frame(for: flow, tcpFlags: flags))
    guard action == .tx else { return nil }
    return EncapsulatedFrame(output)?.outerDestination
}
