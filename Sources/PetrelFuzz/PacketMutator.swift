import Petrel
import PetrelTestSupport

/// Makes the fuzzer's packets: random bytes, and valid packets towards VIPs and
/// other addresses, then mutated the ways real networks and attackers do.
struct PacketMutator {
    let vips: [Vip]
    var rng: SeededGenerator

    enum Kind: String, CaseIterable {
        case randomBytes, valid, truncated, lengthLies, badIHL, ipv4Options, fragment, ipv6Extension,
             vlan, icmpGarbage, icmpValid, byteFlips, maximal, quic, echo, tooBig
    }

    mutating func next() -> (kind: Kind, frame: [UInt8]) {
        let kind = Kind.allCases.randomElement(using: &rng)!
        return (kind, make(kind))
    }

    private mutating func make(_ kind: Kind) -> [UInt8] {
        switch kind {
        case .randomBytes:
            return (0..<Int.random(in: 14...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        case .valid:
            return validFrame()
        case .truncated:
            let frame = validFrame()
            return Array(frame.prefix(Int.random(in: 14...frame.count, using: &rng)))
        case .lengthLies:
            var frame = validFrame()
            let l3 = 14
            if frame[12] == 0x08 {
                let lie = UInt16.random(in: 0...UInt16.max, using: &rng)
                frame[l3 + 2] = UInt8(lie >> 8); frame[l3 + 3] = UInt8(lie & 0xff)
            } else {
                frame[l3 + 4] = UInt8.random(in: 0...255, using: &rng); frame[l3 + 5] = UInt8.random(in: 0...255, using: &rng)
            }
            return frame
        case .badIHL:
            var frame = validFrame(family: .ipv4)
            frame[14] = 0x40 | UInt8.random(in: 0...15, using: &rng)
            return frame
        case .ipv4Options:
            let words = Int.random(in: 1...10, using: &rng)
            let options = (0..<words * 4).map { _ in UInt8.random(in: 0...255, using: &rng) }
            return validFrame(family: .ipv4, options: options)
        case .fragment:
            var frame = validFrame()
            if frame[12] == 0x08 {
                frame[14 + 6] = UInt8.random(in: 0...0x3f, using: &rng) | 0x20
                frame[14 + 7] = UInt8.random(in: 0...255, using: &rng)
            } else {
                frame[14 + 6] = 44
            }
            return frame
        case .ipv6Extension:
            var frame = validFrame(family: .ipv6)
            frame[14 + 6] = [0, 43, 50, 51, 60, 135, 59].randomElement(using: &rng)!
            return frame
        case .vlan:
            return validFrame(vlan: UInt16.random(in: 0...4095, using: &rng))
        case .icmpGarbage:
            return icmpFrame(quoted: (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
        case .icmpValid:
            let flow = randomFlow()
            let reply = flow.source.family == .ipv4
                ? PacketBuilder.ipv4(source: flow.destination, destination: flow.source, protocol: flow.proto.number,
                                     payload: PacketBuilder.udp(sourcePort: flow.destinationPort, destinationPort: flow.sourcePort))
                : PacketBuilder.ipv6(source: flow.destination, destination: flow.source, nextHeader: flow.proto.number,
                                     payload: PacketBuilder.udp(sourcePort: flow.destinationPort, destinationPort: flow.sourcePort))
            return icmpFrame(quoted: reply, family: flow.source.family, destination: flow.destination)
        case .byteFlips:
            var frame = validFrame()
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                frame[Int.random(in: 0..<frame.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            return frame
        case .maximal:
            return validFrame(payload: Int.random(in: 1400...3000, using: &rng))
        case .quic:
            return quicFrame()
        case .echo:
            return echoFrame()
        case .tooBig:
            return tooBigFrame()
        }
    }

    /// An echo request to a VIP address or a neighbour of one (often in the same
    /// filter slot, never answered), sometimes with a code, IP options, a VLAN tag
    /// or a checksum that does not verify.
    private mutating func echoFrame() -> [UInt8] {
        var flow = randomFlow()
        if Int.random(in: 0..<4, using: &rng) == 0 {
            var bytes = flow.destination.bytes
            bytes[bytes.count - 1] ^= UInt8.random(in: 1...255, using: &rng)
            flow = Flow(proto: flow.proto, source: flow.source, sourcePort: 0, destination: IPAddress(wireBytes: bytes)!, destinationPort: 0)
        }
        let payload = (0..<Int.random(in: 0...120, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var frame = PacketBuilder.echoRequest(from: flow.source, to: flow.destination, id: UInt16.random(in: 0...UInt16.max, using: &rng),
                                              sequence: UInt16.random(in: 0...UInt16.max, using: &rng), payload: payload,
                                              vlan: Int.random(in: 0..<4, using: &rng) == 0 ? 7 : nil)
        let l2 = frame[12] == 0x81 ? 18 : 14
        let icmp = l2 + (flow.source.family == .ipv4 ? 20 : 40)
        switch Int.random(in: 0..<8, using: &rng) {
        case 0: frame[icmp + 1] = UInt8.random(in: 1...255, using: &rng)              // a code
        case 1: frame[icmp + 4 + Int.random(in: 0..<4, using: &rng)] ^= 0x5a          // checksum no longer verifies
        case 2 where flow.source.family == .ipv4:                                      // IP options
            let options: [UInt8] = [1, 1, 1, 0]
            let l3 = PacketBuilder.ipv4(source: flow.source, destination: flow.destination, protocol: 1,
                                        payload: Array(frame[icmp...]), options: options)
            frame = Array(frame[0..<l2]) + l3
        default: break
        }
        return frame
    }

    /// A packet to a VIP that does not fit the link once encapsulated: usually
    /// answerable, sometimes without DF (IPv4), from an address that is not one
    /// host's, or on a VLAN.
    private mutating func tooBigFrame() -> [UInt8] {
        var frame = validFrame(vlan: Int.random(in: 0..<4, using: &rng) == 0 ? 9 : nil, payload: Int.random(in: 1450...2000, using: &rng))
        let l2 = frame[12] == 0x81 ? 18 : 14
        let v4 = frame[l2 - 2] == 0x08
        switch Int.random(in: 0..<6, using: &rng) {
        case 0 where v4:
            frame[l2 + 6] &= ~0x40  // DF clear: no answer
            fixIPv4Checksum(&frame, at: l2)
        case 1:
            let sources: [[UInt8]] = v4 ? [[127, 0, 0, 1], [224, 0, 0, 5], [0, 1, 2, 3], [255, 255, 255, 255], [240, 1, 1, 1]]
                : [[0xff, 2] + [UInt8](repeating: 0, count: 13) + [1], [UInt8](repeating: 0, count: 16), [UInt8](repeating: 0, count: 15) + [1]]
            let source = sources.randomElement(using: &rng)!
            frame.replaceSubrange(l2 + (v4 ? 12 : 8) ..< l2 + (v4 ? 16 : 24), with: source)
            if v4 { fixIPv4Checksum(&frame, at: l2) }
        default: break
        }
        return frame
    }

    private func fixIPv4Checksum(_ frame: inout [UInt8], at l2: Int) {
        let headerLength = Int(frame[l2] & 0x0f) * 4
        frame[l2 + 10] = 0; frame[l2 + 11] = 0
        let checksum = PacketBuilder.internetChecksum(Array(frame[l2 ..< l2 + headerLength]))
        frame[l2 + 10] = UInt8(checksum >> 8); frame[l2 + 11] = UInt8(checksum & 0xff)
    }

    /// A QUIC packet to a `quic` VIP: long or short header, a connection ID naming
    /// one of its reals, an unknown or zero id, another format, or cut short.
    private mutating func quicFrame() -> [UInt8] {
        guard let vip = vips.filter({ $0.flags.contains(.quic) }).randomElement(using: &rng) else { return validFrame() }
        let ids = vip.reals.compactMap(\.quicServerId)
        let id = (ids + [0, 999, UInt16.random(in: 0...UInt16.max, using: &rng)]).randomElement(using: &rng)!
        let format: UInt8 = [1, 1, 1, 0, 7].randomElement(using: &rng)!
        let first: UInt8 = Bool.random(using: &rng) || Bool.random(using: &rng) ? 0x40 | UInt8.random(in: 0...0x3f, using: &rng) : 0xc0
        var payload = [first, format << 5 | 7, UInt8(id >> 8), UInt8(id & 0xff)]
        payload += (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        payload = Array(payload.prefix(Int.random(in: 0...payload.count, using: &rng)))
        var flow = randomFlow(family: vip.key.address.family)
        flow = Flow(proto: .udp, source: flow.source, sourcePort: flow.sourcePort, destination: vip.key.address, destinationPort: vip.key.port)
        return PacketBuilder.frame(for: flow, payload: payload, vlan: Bool.random(using: &rng) ? 5 : nil)
    }

    private mutating func randomFlow(family: AddressFamily? = nil) -> Flow {
        let useVip = Bool.random(using: &rng) || Bool.random(using: &rng)
        let candidates = vips.filter { family == nil || $0.key.address.family == family }
        let proto: L4Protocol
        let destination: IPAddress
        var port = UInt16.random(in: 1...65535, using: &rng)
        if useVip, let vip = candidates.randomElement(using: &rng) {
            destination = vip.key.address
            proto = vip.key.proto
            if vip.key.port != 0 { port = vip.key.port }
        } else {
            let isV4 = family.map { $0 == .ipv4 } ?? Bool.random(using: &rng)
            destination = isV4 ? .v4(198, 18, 100, UInt8.random(in: 0...255, using: &rng))
                : .v6(high: 0xfd50_0000_0100_0000, low: UInt64.random(in: 0...255, using: &rng))
            proto = Bool.random(using: &rng) ? .tcp : .udp
        }
        let source: IPAddress = destination.family == .ipv4
            ? .v4(198, 18, UInt8.random(in: 1...250, using: &rng), UInt8.random(in: 1...254, using: &rng))
            : .v6(high: 0xfd50_0000_0001_0000, low: UInt64.random(in: 0...UInt64.max, using: &rng))
        return Flow(proto: proto, source: source, sourcePort: UInt16.random(in: 1...65535, using: &rng), destination: destination, destinationPort: port)
    }

    private mutating func validFrame(family: AddressFamily? = nil, options: [UInt8] = [], vlan: UInt16? = nil, payload: Int? = nil) -> [UInt8] {
        let flow = randomFlow(family: family)
        let body = (0..<(payload ?? Int.random(in: 0...64, using: &rng))).map { _ in UInt8.random(in: 0...255, using: &rng) }
        if !options.isEmpty && flow.source.family == .ipv4 {
            let l4 = flow.proto == .tcp
                ? PacketBuilder.tcp(sourcePort: flow.sourcePort, destinationPort: flow.destinationPort, flags: UInt8.random(in: 0...0x3f, using: &rng), payload: body)
                : PacketBuilder.udp(sourcePort: flow.sourcePort, destinationPort: flow.destinationPort, payload: body)
            return PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeIPv4,
                                          payload: PacketBuilder.ipv4(source: flow.source, destination: flow.destination, protocol: flow.proto.number, payload: l4, options: options))
        }
        let flags = [PacketBuilder.TCPFlags.syn, PacketBuilder.TCPFlags.ack, PacketBuilder.TCPFlags.ack | PacketBuilder.TCPFlags.psh,
                     PacketBuilder.TCPFlags.fin | PacketBuilder.TCPFlags.ack, PacketBuilder.TCPFlags.rst].randomElement(using: &rng)!
        return PacketBuilder.frame(for: flow, tcpFlags: flags, payload: body, vlan: vlan)
    }

    private mutating func icmpFrame(quoted: [UInt8], family: AddressFamily? = nil, destination: IPAddress? = nil) -> [UInt8] {
        let isV4 = family.map { $0 == .ipv4 } ?? Bool.random(using: &rng)
        let target = destination ?? randomFlow(family: isV4 ? .ipv4 : .ipv6).destination
        let type: UInt8 = isV4 ? [3, 11, 8, 0, 5].randomElement(using: &rng)! : [1, 2, 3, 128, 135].randomElement(using: &rng)!
        let icmp = PacketBuilder.icmpError(type: type, code: 0, quoting: quoted)
        if isV4 {
            return PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeIPv4,
                                          payload: PacketBuilder.ipv4(source: .v4(198, 18, 1, 1), destination: target, protocol: 1, payload: icmp))
        }
        return PacketBuilder.ethernet(etherType: PacketBuilder.etherTypeIPv6,
                                      payload: PacketBuilder.ipv6(source: .v6(high: 0xfd50_0000_0001_0000, low: 1),
                                                                  destination: target, nextHeader: 58, payload: icmp))
    }
}
