import Foundation
import Petrel
import Testing
import PetrelTestSupport

/// The reals' decapsulation program with GUE: packet in, packet out through
/// BPF_PROG_TEST_RUN, every byte of what reaches the kernel checked, and every
/// malformed GUE packet dropped and counted.
@Suite("GUE decapsulation on the reals, packet by packet", .serialized)
struct GUEDecapPacketTests {
    static let real4 = ip("198.18.3.11")
    static let real6 = ip("fd50:0:3::11")
    static let port = Decapsulator.defaultGUEPort
    let decapsulator: Decapsulator

    init() throws { decapsulator = try Decapsulator(localAddresses: [Self.real4, Self.real6]) }

    /// The inner packet a client sent to a VIP.
    static func inner(_ family: AddressFamily, proto: L4Protocol = .tcp) -> [UInt8] {
        let flow = family == .ipv4
            ? Flow(proto: proto, source: ip("198.18.1.2"), sourcePort: 40000, destination: ip("198.18.100.1"), destinationPort: 80)
            : Flow(proto: proto, source: ip("fd50:0:1::2"), sourcePort: 40000, destination: ip("fd50:0:100::1"), destinationPort: 80)
        return Array(PacketBuilder.frame(for: flow, payload: Array("through GUE".utf8)).dropFirst(14))
    }

    /// A GUE frame as the balancer sends it: outer IP to `real`, UDP to the GUE port, the inner packet.
    static func gueFrame(to real: IPAddress, inner: [UInt8], port: UInt16 = port, vlan: UInt16? = nil) -> [UInt8] {
        let udp = PacketBuilder.udp(sourcePort: 51234, destinationPort: port, payload: inner)
        if real.family == .ipv4 {
            let outer = PacketBuilder.ipv4(source: ip("198.19.1.2"), destination: real, protocol: 17, payload: udp)
            return PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeIPv4, payload: outer, vlan: vlan)
        }
        let outer = PacketBuilder.ipv6(source: ip("fd50:0:ffff::1"), destination: real, nextHeader: 17, payload: udp)
        return PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeIPv6, payload: outer, vlan: vlan)
    }

    func run(_ frame: [UInt8]) throws -> (action: XDPAction, packet: [UInt8]) {
        let result = try decapsulator.program.testRun(packet: frame)
        return (XDPAction(rawValue: result.returnValue) ?? .aborted, result.packet)
    }

    func counter(_ outcome: Decapsulator.Outcome) throws -> UInt64 { try decapsulator.stats()[outcome] ?? 0 }

    @Test("Every outer/inner family combination: the kernel gets L2 + the inner packet, byte for byte", arguments: [
        (AddressFamily.ipv4, AddressFamily.ipv4), (.ipv6, .ipv6), (.ipv6, .ipv4), (.ipv4, .ipv6),
    ])
    func everyFamily(outer: AddressFamily, innerFamily: AddressFamily) throws {
        let inner = Self.inner(innerFamily)
        let frame = Self.gueFrame(to: outer == .ipv4 ? Self.real4 : Self.real6, inner: inner)
        let (action, output) = try run(frame)
        #expect(action == .pass)
        let etherType: UInt16 = innerFamily == .ipv4 ? 0x0800 : 0x86dd
        #expect(output == Array(frame.prefix(12)) + [UInt8(etherType >> 8), UInt8(etherType & 0xff)] + inner)
        #expect(try counter(.decapsulatedGUE) == 1)
        #expect(try counter(.decapsulated) == 0, "GUE is counted apart from IP-in-IP")
        #expect(try counter(.rx) == 1)
    }

    @Test("A VLAN tag stays in front of the inner packet, with the inner ethertype")
    func vlanTag() throws {
        let inner = Self.inner(.ipv4, proto: .udp)
        let frame = Self.gueFrame(to: Self.real4, inner: inner, vlan: 42)
        let (action, output) = try run(frame)
        #expect(action == .pass)
        #expect(output == Array(frame.prefix(16)) + [0x08, 0x00] + inner)
    }

    @Test("UDP to another port, to another host, or with GUE off passes untouched")
    func notOurs() throws {
        let inner = Self.inner(.ipv4)
        let otherPort = Self.gueFrame(to: Self.real4, inner: inner, port: Self.port + 1)
        #expect(try run(otherPort) == (.pass, otherPort))
        let otherHost = Self.gueFrame(to: ip("198.18.3.99"), inner: inner)
        #expect(try run(otherHost) == (.pass, otherHost))
        #expect(try counter(.passNotTunnel) == 1)
        #expect(try counter(.passNotLocal) == 1)

        let gueOff = try Decapsulator(localAddresses: [Self.real4], guePort: nil)
        let frame = Self.gueFrame(to: Self.real4, inner: inner)
        let result = try gueOff.program.testRun(packet: frame)
        #expect(XDPAction(rawValue: result.returnValue) == .pass && result.packet == frame)
        #expect(try gueOff.stats()[.passNotTunnel] == 1)
        #expect(throws: PetrelError.self) { try Decapsulator(localAddresses: [Self.real4], guePort: 0) }
    }

    @Test("A configured GUE port other than the default is honoured")
    func otherPort() throws {
        let custom = try Decapsulator(localAddresses: [Self.real6], guePort: 9999)
        let inner = Self.inner(.ipv6)
        let result = try custom.program.testRun(packet: Self.gueFrame(to: Self.real6, inner: inner, port: 9999))
        #expect(XDPAction(rawValue: result.returnValue) == .pass)
        #expect(Array(result.packet.dropFirst(14)) == inner)
        let atDefault = Self.gueFrame(to: Self.real6, inner: inner)
        #expect(try custom.program.testRun(packet: atDefault).packet == atDefault, "the default port is not ours then")
    }

    @Test("IP-in-IP still decapsulates beside GUE")
    func ipipStillWorks() throws {
        let inner = Self.inner(.ipv4)
        let outer = PacketBuilder.ipv4(source: ip("198.19.1.2"), destination: Self.real4, protocol: 4, payload: inner)
        let frame = PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeIPv4, payload: outer)
        let (action, output) = try run(frame)
        #expect(action == .pass && Array(output.dropFirst(14)) == inner)
        #expect(try counter(.decapsulated) == 1 && counter(.decapsulatedGUE) == 0)
    }

    /// A GUE frame with its outer UDP payload replaced, lengths kept consistent
    /// in the outer headers so only the GUE content is wrong.
    static func gueFrame(to real: IPAddress, rawPayload: [UInt8]) -> [UInt8] { gueFrame(to: real, inner: rawPayload) }

    @Test("Malformed GUE is dropped and counted, never handed up", arguments: [AddressFamily.ipv4, .ipv6])
    func malformed(outer: AddressFamily) throws {
        let real = outer == .ipv4 ? Self.real4 : Self.real6
        let ipOffset = 14 + (outer == .ipv4 ? 20 : 40)
        let inner4 = Self.inner(.ipv4), inner6 = Self.inner(.ipv6)
        var cases: [(String, [UInt8])] = [
            ("empty UDP payload", Self.gueFrame(to: real, rawPayload: [])),
            ("GUE variant 0 header (version bits 00)", Self.gueFrame(to: real, rawPayload: [0x00, 0x00, 0x00, 0x00] + inner4)),
            ("first nibble 5", Self.gueFrame(to: real, rawPayload: [0x50] + Array(inner4.dropFirst()))),
            ("inner IPv4 cut to 19 bytes", Self.gueFrame(to: real, rawPayload: Array(inner4.prefix(19)))),
            ("inner IPv6 cut to 39 bytes", Self.gueFrame(to: real, rawPayload: Array(inner6.prefix(39)))),
            ("inner IPv4 longer than the UDP payload", Self.gueFrame(to: real, rawPayload: Array(inner4.dropLast()))),
            ("inner IPv6 shorter than the UDP payload", Self.gueFrame(to: real, rawPayload: inner6 + [0])),
        ]
        var badIHL = inner4
        badIHL[0] = 0x44
        cases.append(("inner IPv4 header length 16", Self.gueFrame(to: real, rawPayload: badIHL)))
        var udpLengthLies = Self.gueFrame(to: real, inner: inner4)
        udpLengthLies[ipOffset + 5] &+= 1
        cases.append(("UDP length says one byte more than the IP payload", udpLengthLies))
        // Every truncation of a good frame after the UDP destination port: the
        // outer lengths then promise more than arrived.
        let good = Self.gueFrame(to: real, inner: inner4)
        for cut in stride(from: ipOffset + 8, to: good.count, by: 7) {
            cases.append(("cut to \(cut) bytes", Array(good.prefix(cut))))
        }

        for (index, (name, frame)) in cases.enumerated() {
            let (action, _) = try run(frame)
            #expect(action == .drop, "\(name)")
            #expect(try counter(.dropGUEMalformed) == UInt64(index + 1), "\(name)")
        }
        #expect(try counter(.decapsulatedGUE) == 0)
        #expect(try counter(.rx) == UInt64(cases.count))
    }
}
