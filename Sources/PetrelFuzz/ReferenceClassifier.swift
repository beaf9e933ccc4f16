import Petrel

/// What the data plane must do with a packet, decided in Swift from the same
/// rules as bpf/lib/parse.h and select.h but written independently: the fuzzer
/// compares the kernel against it packet by packet.
struct ReferenceClassifier {
    let vips: [VipKey: Vip]
    let mtu: Int
    /// The ICMP answers (docs/icmp.md): echo replies for VIP addresses, too-big answers.
    var echoReply = true
    var tooBig = true
    var vipAddresses: Set<IPAddress> { Set(vips.keys.map(\.address)) }

    struct Verdict {
        var reason: StatReason
        /// For forwarded packets: the VIP and the length of the L2 header.
        var vip: Vip?
        var l2Length = 14
        /// The IP packet's declared length (what the outer header must carry).
        var l3Length = 0
        /// On a `quic` VIP: the real a short header's connection ID names, if any.
        var quicReal: IPAddress?
        /// The real the client's longest source route pins it to, if that real is in service.
        var routedReal: IPAddress?
        /// For a too-big answer: the MTU it must name.
        var answerMTU = 0
    }

    func classify(_ frame: [UInt8]) -> Verdict {
        let count = frame.count
        func be16(_ offset: Int) -> Int { Int(frame[offset]) << 8 | Int(frame[offset + 1]) }
        guard count >= 14 else { return Verdict(reason: .dropMalformed) }
        var etherType = be16(12)
        var l2 = 14
        if etherType == 0x8100 || etherType == 0x88a8 {
            guard count >= 18 else { return Verdict(reason: .dropMalformed) }
            etherType = be16(16)
            l2 = 18
        }

        var flow: (source: [UInt8], destination: [UInt8], sourcePort: Int, destinationPort: Int, proto: UInt8)
        var l3Length: Int
        var icmpError = false
        var family: AddressFamily
        /// The UDP payload of a UDP packet (bounded by the UDP length).
        var udpPayload: ArraySlice<UInt8> = []

        switch etherType {
        case 0x0800:
            family = .ipv4
            guard count >= l2 + 20 else { return Verdict(reason: .dropMalformed) }
            let version = frame[l2] >> 4, ihl = Int(frame[l2] & 0x0f)
            guard version == 4, ihl >= 5 else { return Verdict(reason: .dropMalformed) }
            let headerLength = ihl * 4
            let total = be16(l2 + 2)
            guard total >= headerLength, l2 + total <= count else { return Verdict(reason: .dropMalformed) }
            if be16(l2 + 6) & 0x3fff != 0 { return Verdict(reason: .passFragment) }
            l3Length = total
            let proto = frame[l2 + 9]
            let l4 = l2 + headerLength, l4Length = total - headerLength
            flow = (Array(frame[l2 + 12 ..< l2 + 16]), Array(frame[l2 + 16 ..< l2 + 20]), 0, 0, proto)
            if proto == 1 {
                guard l4 + 8 <= count, l4Length >= 8 else { return Verdict(reason: .dropMalformed) }
                let type = frame[l4]
                if type == 8 {
                    // Answered only without IP options and with code 0; else the kernel's.
                    let answered = echoReply && isVipAddress(flow.destination) && ihl == 5 && frame[l4 + 1] == 0
                    return Verdict(reason: answered ? .replyEcho : .passICMP, l2Length: l2, l3Length: total)
                }
                guard type == 3 || type == 11 else { return Verdict(reason: .passICMP) }
                let quoted = l4 + 8, quotedLength = l4Length - 8
                guard quoted + 20 <= count, frame[quoted] >> 4 == 4, frame[quoted] & 0x0f >= 5 else { return Verdict(reason: .passICMP) }
                let quotedHeader = Int(frame[quoted] & 0x0f) * 4
                guard quotedLength >= quotedHeader + 4 else { return Verdict(reason: .passICMP) }
                let quotedProto = frame[quoted + 9]
                guard quotedProto == 6 || quotedProto == 17 else { return Verdict(reason: .passICMP) }
                let ports = quoted + quotedHeader
                guard ports + 4 <= count else { return Verdict(reason: .passICMP) }
                flow = (Array(frame[quoted + 16 ..< quoted + 20]), Array(frame[quoted + 12 ..< quoted + 16]),
                        be16(ports + 2), be16(ports), quotedProto)
                icmpError = true
            } else if let reason = ports(frame, at: l4, length: l4Length, proto: proto, into: &flow) {
                return Verdict(reason: reason)
            } else if proto == 17 {
                udpPayload = frame[l4 + 8 ..< l4 + be16(l4 + 4)]
            }
        case 0x86dd:
            family = .ipv6
            guard count >= l2 + 40 else { return Verdict(reason: .dropMalformed) }
            guard frame[l2] >> 4 == 6 else { return Verdict(reason: .dropMalformed) }
            let total = 40 + be16(l2 + 4)
            guard l2 + total <= count else { return Verdict(reason: .dropMalformed) }
            l3Length = total
            let next = frame[l2 + 6]
            flow = (Array(frame[l2 + 8 ..< l2 + 24]), Array(frame[l2 + 24 ..< l2 + 40]), 0, 0, next)
            if next == 44 { return Verdict(reason: .passFragment) }
            let l4 = l2 + 40, l4Length = total - 40
            if next == 58 {
                guard l4 + 8 <= count, l4Length >= 8 else { return Verdict(reason: .dropMalformed) }
                let type = frame[l4]
                if type == 128 {
                    let answered = echoReply && isVipAddress(flow.destination) && frame[l4 + 1] == 0
                    return Verdict(reason: answered ? .replyEcho : .passICMP, l2Length: l2, l3Length: total)
                }
                guard type == 1 || type == 2 || type == 3 else { return Verdict(reason: .passICMP) }
                let quoted = l4 + 8, quotedLength = l4Length - 8
                guard quoted + 40 <= count, frame[quoted] >> 4 == 6, quotedLength >= 44 else { return Verdict(reason: .passICMP) }
                let quotedProto = frame[quoted + 6]
                guard quotedProto == 6 || quotedProto == 17 else { return Verdict(reason: .passICMP) }
                guard quoted + 44 <= count else { return Verdict(reason: .passICMP) }
                flow = (Array(frame[quoted + 24 ..< quoted + 40]), Array(frame[quoted + 8 ..< quoted + 24]),
                        be16(quoted + 42), be16(quoted + 40), quotedProto)
                icmpError = true
            } else if let reason = ports(frame, at: l4, length: l4Length, proto: next, into: &flow) {
                return Verdict(reason: reason)
            } else if next == 17 {
                udpPayload = frame[l4 + 8 ..< l4 + be16(l4 + 4)]
            }
        default:
            return Verdict(reason: .passNotIP)
        }

        guard let proto = L4Protocol.allCases.first(where: { $0.number == flow.proto }) else {
            return Verdict(reason: icmpError ? .passICMP : .passUnsupported)
        }
        guard let address = IPAddress(wireBytes: flow.destination) else { return Verdict(reason: .passUnsupported) }
        let exact = VipKey(address: address, port: UInt16(flow.destinationPort), proto: proto)
        guard let vip = vips[exact] ?? vips[VipKey(address: address, port: 0, proto: proto)] else {
            return Verdict(reason: icmpError ? .passICMP : .passNotVip)
        }
        // A QUIC short header whose connection ID (format v1: byte 1's top bits 001,
        // id in bytes 2-3) names a real of the VIP goes to that real, drained or not.
        var quicReal: IPAddress?
        if vip.flags.contains(.quic), proto == .udp, !icmpError, let first = udpPayload.first, first & 0x80 == 0, udpPayload.count >= 8 {
            let cid = Array(udpPayload.dropFirst().prefix(3))
            let id = UInt16(cid[1]) << 8 | UInt16(cid[2])
            if cid[0] >> 5 == 1, id != 0 { quicReal = vip.reals.first { $0.quicServerId == id }?.address }
        }
        // The longest source prefix holding the client picks its real, unless that real
        // has weight 0 (out of service): then the ring does, as without a route.
        var routedReal: IPAddress?
        if quicReal == nil, let route = longestRoute(vip, client: flow.source),
           vip.reals.contains(where: { $0.address == route.real && $0.weight > 0 }) {
            routedReal = route.real
        }
        let chosen = (quicReal ?? routedReal).flatMap { chosen in vip.reals.first { $0.address == chosen } }
        guard let firstReal = chosen ?? vip.reals.first(where: { $0.weight > 0 })
        else { return Verdict(reason: .dropNoReal) }
        let outerLength = (firstReal.address.family == .ipv4 ? 20 : 40) + (firstReal.encapsulation == .gue ? 8 : 0)
        if outerLength + l3Length > mtu {
            // An answer is due to one host's packet that asked not to be fragmented, never to an ICMP error.
            let dontFragment = family == .ipv6 || frame[l2 + 6] & 0x40 != 0
            let source = IPAddress(wireBytes: flow.source)!
            guard tooBig, !icmpError, dontFragment, source.namesOneHost else { return Verdict(reason: .dropTooBig) }
            let answerMTU = family == .ipv6 ? max(mtu - outerLength, 1280) : mtu - outerLength
            return Verdict(reason: .replyTooBig, vip: vip, l2Length: l2, l3Length: l3Length, answerMTU: answerMTU)
        }
        return Verdict(reason: .forward, vip: vip, l2Length: l2, l3Length: l3Length, quicReal: quicReal, routedReal: routedReal)
    }

    /// The route whose prefix is the longest to hold `client` (wire bytes), compared bit by bit.
    private func longestRoute(_ vip: Vip, client: [UInt8]) -> SourceRoute? {
        var best: SourceRoute?
        for route in vip.sourceRoutes {
            let network = route.prefix.address.bytes
            guard network.count == client.count, route.prefix.length <= network.count * 8 else { continue }
            let matches = (0..<route.prefix.length).allSatisfy { bit in
                (network[bit / 8] ^ client[bit / 8]) & (0x80 >> UInt8(bit % 8)) == 0
            }
            if matches && route.prefix.length >= (best?.prefix.length ?? -1) { best = route }
        }
        return best
    }

    private func isVipAddress(_ bytes: [UInt8]) -> Bool {
        IPAddress(wireBytes: bytes).map { vipAddresses.contains($0) } ?? false
    }

    /// TCP or UDP ports; returns the reason when the packet goes no further.
    private func ports(_ frame: [UInt8], at l4: Int, length: Int, proto: UInt8,
                       into flow: inout (source: [UInt8], destination: [UInt8], sourcePort: Int, destinationPort: Int, proto: UInt8)) -> StatReason? {
        let needed: Int
        switch proto {
        case 6: needed = 20
        case 17: needed = 8
        default: return .passUnsupported
        }
        guard l4 + needed <= frame.count, length >= needed else { return .dropMalformed }
        if proto == 6 {
            let dataOffset = Int(frame[l4 + 12] >> 4)
            if dataOffset < 5 || dataOffset * 4 > length { return .dropMalformed }
        } else {
            let udpLength = Int(frame[l4 + 4]) << 8 | Int(frame[l4 + 5])
            if udpLength < 8 || udpLength > length { return .dropMalformed }
        }
        flow.sourcePort = Int(frame[l4]) << 8 | Int(frame[l4 + 1])
        flow.destinationPort = Int(frame[l4 + 2]) << 8 | Int(frame[l4 + 3])
        return nil
    }
}
