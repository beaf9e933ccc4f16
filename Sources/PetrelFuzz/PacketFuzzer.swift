import Foundation
import Petrel
import PetrelTestSupport

/// Feeds the real balancer program (BPF_PROG_TEST_RUN) with random and mutated
/// packets and checks every verdict and every output byte against an
/// independent Swift model of what the program must do.
public final class PacketFuzzer {
    /// A realistic configuration: IPv4 and IPv6 VIPs, a port-wildcard VIP, 4in6,
    /// flags, several reals, reals reached by GUE, a QUIC VIP, and VIPs with
    /// source routes (nested prefixes over the mutator's clients, 198.18.0.0/16
    /// and fd50:0:1::/64; one pinned to a drained real; one on an lru_bypass VIP).
    public static let vips: [Vip] = {
        func route(_ prefix: String, _ real: String) -> SourceRoute { SourceRoute(prefix: IPPrefix(prefix)!, real: IPAddress(real)!) }
        func reals(_ prefix: String, _ count: Int, _ encapsulation: Encapsulation = .ipip, quic: Bool = false) -> [Real] {
            (1...count).map {
                Real(address: IPAddress("\(prefix)\($0)")!, weight: UInt32($0), encapsulation: encapsulation,
                     quicServerId: quic ? UInt16(100 + $0) : nil)
            }
        }
        return [
            Vip(key: VipKey(address: IPAddress("198.18.100.1")!, port: 80, proto: .tcp), reals: reals("198.18.3.", 5)),
            Vip(key: VipKey(address: IPAddress("198.18.100.1")!, port: 53, proto: .udp), flags: .lruBypass, reals: reals("198.18.3.", 3),
                sourceRoutes: [route("198.18.0.0/18", "198.18.3.2"), route("198.18.32.0/19", "198.18.3.3")]),
            Vip(key: VipKey(address: IPAddress("198.18.100.2")!, port: 0, proto: .tcp), reals: reals("fd50:0:3::", 4)),
            Vip(key: VipKey(address: IPAddress("198.18.100.3")!, port: 443, proto: .tcp), flags: .hashWithoutSourcePort, reals: reals("198.18.4.", 8)),
            Vip(key: VipKey(address: IPAddress("fd50:0:100::1")!, port: 80, proto: .tcp), reals: reals("fd50:0:3::", 6)),
            Vip(key: VipKey(address: IPAddress("fd50:0:100::1")!, port: 0, proto: .udp), flags: .hashDestinationPortOnly, reals: reals("fd50:0:4::", 3)),
            Vip(key: VipKey(address: IPAddress("198.18.100.4")!, port: 80, proto: .tcp), reals: reals("198.18.5.", 4, .gue)),
            Vip(key: VipKey(address: IPAddress("198.18.100.4")!, port: 0, proto: .udp), reals: reals("fd50:0:5::", 3, .gue)),
            Vip(key: VipKey(address: IPAddress("fd50:0:100::2")!, port: 80, proto: .tcp), reals: reals("fd50:0:6::", 3, .gue)),
            Vip(key: VipKey(address: IPAddress("198.18.100.5")!, port: 443, proto: .udp), flags: .quic, reals: reals("198.18.6.", 4, quic: true)),
            Vip(key: VipKey(address: IPAddress("fd50:0:100::3")!, port: 443, proto: .udp), flags: .quic, reals: reals("fd50:0:7::", 3, .gue, quic: true)),
            Vip(key: VipKey(address: IPAddress("198.18.100.6")!, port: 80, proto: .tcp),
                reals: reals("198.18.7.", 4) + [Real(address: IPAddress("198.18.7.5")!, weight: 0)],
                sourceRoutes: [route("198.18.0.0/17", "198.18.7.1"), route("198.18.64.0/18", "198.18.7.2"), route("198.18.100.0/22", "198.18.7.3"),
                               route("198.18.101.0/24", "198.18.7.5"), route("198.18.101.128/25", "198.18.7.4"), route("198.18.200.7/32", "198.18.7.2")]),
            Vip(key: VipKey(address: IPAddress("fd50:0:100::4")!, port: 0, proto: .tcp), reals: reals("fd50:0:8::", 3),
                sourceRoutes: [route("fd50:0:1::/64", "fd50:0:8::1"), route("fd50:0:1:0:8000::/65", "fd50:0:8::2"),
                               route("fd50:0:1:0:c000::/66", "fd50:0:8::3")]),
        ]
    }()

    /// The configuration `applyEvery` switches to, and back from: every kind of
    /// change an apply makes to what packets meet. A VIP removed (198.18.100.3:443)
    /// and one added where its address already had VIPs (198.18.100.1:8080, whose
    /// packets the VIP cache has answered "no VIP" until then); reals removed (their
    /// ids released, so their known flows decide afresh) and added on an IPv4 and an
    /// IPv6 VIP; lru_bypass turned on for a GUE VIP. Reals removed here belong to no
    /// other VIP, so every forwarded packet must go to a real of its VIP as it is now.
    public static let changedVips: [Vip] = {
        func real(_ address: String, _ weight: UInt32 = 1, _ encapsulation: Encapsulation = .ipip) -> Real {
            Real(address: IPAddress(address)!, weight: weight, encapsulation: encapsulation)
        }
        return vips.compactMap { vip -> Vip? in
            var vip = vip
            switch "\(vip.key.address) \(vip.key.port) \(vip.key.proto)" {
            case "198.18.100.3 443 tcp": return nil
            case "198.18.100.1 80 tcp": vip.reals = vip.reals.prefix(3) + [real("198.18.3.6", 2), real("198.18.3.7", 5)]
            case "fd50:0:100::1 80 tcp": vip.reals = vip.reals.prefix(4) + [real("fd50:0:3::7", 3)]
            case "198.18.100.4 80 tcp": vip.flags.insert(.lruBypass)
            default: break
            }
            return vip
        } + [Vip(key: VipKey(address: IPAddress("198.18.100.1")!, port: 8080, proto: .tcp),
                 reals: [real("198.18.8.1"), real("198.18.8.2", 2), real("198.18.8.3", 3)])]
    }()

    public static let interfaceMAC = MACAddress(0x02, 0, 0, 0, 0x02, 0x02)
    public static let nextHopMAC = MACAddress(0x02, 0, 0, 0, 0x02, 0x01)
    public static let mtu = 1500

    public let seed: UInt64
    /// Every this many packets the balancer is switched between `vips` and
    /// `changedVips` (0: never), and the model with it.
    public let applyEvery: Int
    private let balancer: LoadBalancer
    private var classifier: ReferenceClassifier
    private var changed = false

    public init(seed: UInt64, applyEvery: Int = 0) throws {
        self.seed = seed
        self.applyEvery = applyEvery
        balancer = try LoadBalancer(limits: DataPlaneLimits(maxVips: 16, maxReals: 64, ringSize: 4093, connectionTableSize: 65536))
        // No ICMP rate limit: every answer the model expects is sent (the limit has its own test).
        try balancer.configureForwarding(ForwardingSettings(interfaceMAC: Self.interfaceMAC, nextHopMAC: Self.nextHopMAC, mtu: Self.mtu,
                                                            icmpRateLimit: 0))
        try balancer.apply(Self.vips)
        classifier = Self.model(of: Self.vips)
    }

    private static func model(of vips: [Vip]) -> ReferenceClassifier {
        ReferenceClassifier(vips: Dictionary(uniqueKeysWithValues: vips.map { ($0.key, $0) }), mtu: mtu)
    }

    /// The other configuration, in the kernel and in the model.
    private func switchConfiguration() throws {
        changed.toggle()
        let vips = changed ? Self.changedVips : Self.vips
        try balancer.apply(vips)
        classifier = Self.model(of: vips)
    }

    /// How many of the latest packets may be sent again, and how often (one in
    /// `replayOneIn`): later packets of the same flows, as real traffic has, so that
    /// the connection tables, the flow cache and the VIP cache answer from what
    /// earlier packets left there.
    static let replayWindow = 64
    static let replayOneIn = 4

    /// One packet that broke an invariant, with what it takes to replay it.
    public struct Failure: CustomStringConvertible, Sendable {
        public let seed: UInt64
        public let index: Int
        public let kind: String
        public let frame: [UInt8]
        public let problem: String

        public var description: String {
            "packet \(index) of seed \(seed) (\(kind)): \(problem)\n  hex: \(frame.map { String(format: "%02x", $0) }.joined())"
        }
    }

    public struct Report: Sendable {
        public var packets = 0
        public var packetsByKind: [String: Int] = [:]
        public var expected: [StatReason: UInt64] = [:]
        public var kernel: [StatReason: UInt64] = [:]
        public var failures: [Failure] = []
        /// Configuration switches made (`applyEvery`).
        public var applies = 0
        public var seconds = 0.0
    }

    /// Runs `packets` packets; stops collecting after `maxFailures` failures.
    public func run(packets: Int, maxFailures: Int = 10, progress: ((Int) -> Void)? = nil) throws -> Report {
        // Packets towards the VIPs of both configurations: a VIP's packets while it is absent must be passed.
        let everyVip = Self.vips + Self.changedVips.filter { vip in !Self.vips.contains { $0.key == vip.key } }
        var mutator = PacketMutator(vips: everyVip, rng: SeededGenerator(seed: seed))
        var replays = SeededGenerator(seed: seed &+ 1)
        var recent: [[UInt8]] = []
        var report = Report()
        let start = Date()
        for index in 0..<packets {
            if applyEvery > 0 && index > 0 && index % applyEvery == 0 {
                try switchConfiguration()
                report.applies += 1
            }
            let kind: String, frame: [UInt8]
            if !recent.isEmpty && Int.random(in: 0..<Self.replayOneIn, using: &replays) == 0 {
                (kind, frame) = ("replay", recent.randomElement(using: &replays)!)
            } else {
                let made = mutator.next()
                (kind, frame) = (made.kind.rawValue, made.frame)
                if recent.count == Self.replayWindow { recent.removeFirst() }
                recent.append(frame)
            }
            report.packets += 1
            report.packetsByKind[kind, default: 0] += 1
            let (reason, problem) = try check(frame)
            report.expected[reason, default: 0] += 1
            if let problem, report.failures.count < maxFailures {
                report.failures.append(Failure(seed: seed, index: index, kind: kind, frame: frame,
                                               problem: problem + (changed ? " (with changedVips)" : "")))
            }
            if index % 100_000 == 99_999 { progress?(index + 1) }
        }
        report.seconds = Date().timeIntervalSince(start)
        let stats = try balancer.stats()
        // Every counter, events too: a test can check the mutations reached each path.
        for reason in StatReason.allCases { report.kernel[reason] = stats[reason] }
        report.expected[.rx] = UInt64(report.packets)
        for reason in StatReason.allCases where reason.isOutcome || reason == .rx {
            let expected = report.expected[reason] ?? 0, counted = report.kernel[reason] ?? 0
            if expected != counted {
                report.failures.append(Failure(seed: seed, index: -1, kind: "counters", frame: [],
                                               problem: "counter \(reason.name) is \(counted), expected \(expected)"))
            }
        }
        return report
    }

    /// Runs one frame and returns the expected outcome and, if the kernel broke
    /// an invariant, what went wrong.
    public func check(_ frame: [UInt8]) throws -> (StatReason, String?) {
        let verdict = classifier.classify(frame)
        let result = try balancer.program.testRun(packet: frame)
        let expectedAction: UInt32 = switch verdict.reason {
        case .forward, .replyEcho, .replyTooBig: 3
        case .dropMalformed, .dropNoReal, .dropTooBig, .dropEncapFailed, .dropNoConfig: 1
        default: 2
        }
        guard [1, 2, 3].contains(result.returnValue) else {
            return (verdict.reason, "returned \(result.returnValue), not PASS, DROP or TX")
        }
        guard result.returnValue == expectedAction else {
            return (verdict.reason, "returned \(result.returnValue), expected \(expectedAction) (\(verdict.reason.name))")
        }
        if expectedAction == 2 && result.packet != frame {
            return (verdict.reason, "a passed packet was modified")
        }
        if verdict.reason == .replyEcho {
            return (verdict.reason, checkEchoReply(result.packet, request: frame, l2Length: verdict.l2Length))
        }
        if verdict.reason == .replyTooBig {
            let expected = Self.tooBigAnswer(to: frame, l2Length: verdict.l2Length, mtu: verdict.answerMTU)
            return (verdict.reason, result.packet == expected ? nil : "too-big answer differs from the model's: got \(result.packet.count) bytes"
                    + (result.packet.count == expected.count ? " differing first at byte \(zip(result.packet, expected).enumerated().first { $0.element.0 != $0.element.1 }!.offset)" : ", expected \(expected.count)"))
        }
        if expectedAction == 3, let vip = verdict.vip {
            return (verdict.reason, checkEncapsulated(result.packet, input: frame, vip: vip, l2Length: verdict.l2Length,
                                                      l3Length: verdict.l3Length, quicReal: verdict.quicReal, routedReal: verdict.routedReal))
        }
        return (verdict.reason, nil)
    }

    /// An echo reply is the request with MACs and addresses swapped, type 0 / 129,
    /// TTL or hop limit 64, IPv4 header checksum right, ICMP checksum right where
    /// the request's was; id, sequence, payload and length unchanged.
    private func checkEchoReply(_ output: [UInt8], request: [UInt8], l2Length: Int) -> String? {
        guard output.count == request.count else { return "echo reply is \(output.count) bytes, the request \(request.count)" }
        guard Array(output[0..<6]) == Array(request[6..<12]), Array(output[6..<12]) == Array(request[0..<6]) else { return "echo reply: MACs not swapped" }
        guard Array(output[12..<l2Length]) == Array(request[12..<l2Length]) else { return "echo reply: L2 type or VLAN changed" }
        let ip = l2Length
        if request[l2Length - 2] == 0x08 {
            let total = Int(request[ip + 2]) << 8 | Int(request[ip + 3])
            guard output[ip + 8] == 64 else { return "echo reply TTL \(output[ip + 8])" }
            guard Array(output[ip + 12 ..< ip + 16]) == Array(request[ip + 16 ..< ip + 20]),
                  Array(output[ip + 16 ..< ip + 20]) == Array(request[ip + 12 ..< ip + 16]) else { return "echo reply: IPv4 addresses not swapped" }
            guard PacketBuilder.internetChecksum(Array(output[ip ..< ip + 20])) == 0 else { return "echo reply: IPv4 header checksum wrong" }
            guard Array(output[ip ..< ip + 8]) == Array(request[ip ..< ip + 8]), output[ip + 9] == 1 else { return "echo reply: IPv4 header changed" }
            let icmp = ip + 20
            guard output[icmp] == 0, output[icmp + 1] == 0 else { return "echo reply type/code \(output[icmp])/\(output[icmp + 1])" }
            guard Array(output[icmp + 4 ..< ip + total]) == Array(request[icmp + 4 ..< ip + total]) else { return "echo reply: id, sequence or payload changed" }
            if PacketBuilder.internetChecksum(Array(request[icmp ..< ip + total])) == 0,
               PacketBuilder.internetChecksum(Array(output[icmp ..< ip + total])) != 0 { return "echo reply: ICMP checksum wrong" }
        } else {
            let total = 40 + (Int(request[ip + 4]) << 8 | Int(request[ip + 5]))
            guard output[ip + 7] == 64 else { return "echo reply hop limit \(output[ip + 7])" }
            let source = IPAddress(wireBytes: output[ip + 8 ..< ip + 24])!, destination = IPAddress(wireBytes: output[ip + 24 ..< ip + 40])!
            guard Array(output[ip + 8 ..< ip + 24]) == Array(request[ip + 24 ..< ip + 40]),
                  Array(output[ip + 24 ..< ip + 40]) == Array(request[ip + 8 ..< ip + 24]) else { return "echo reply: IPv6 addresses not swapped" }
            guard Array(output[ip ..< ip + 7]) == Array(request[ip ..< ip + 7]) else { return "echo reply: IPv6 header changed" }
            let icmp = ip + 40
            guard output[icmp] == 129, output[icmp + 1] == 0 else { return "echo reply type/code \(output[icmp])/\(output[icmp + 1])" }
            guard Array(output[icmp + 4 ..< ip + total]) == Array(request[icmp + 4 ..< ip + total]) else { return "echo reply: id, sequence or payload changed" }
            if PacketBuilder.icmpv6Checksum(source: destination, destination: source, message: Array(request[icmp ..< ip + total])) == 0,
               PacketBuilder.icmpv6Checksum(source: source, destination: destination, message: Array(output[icmp ..< ip + total])) != 0 {
                return "echo reply: ICMPv6 checksum wrong"
            }
        }
        return nil
    }

    /// The too-big answer the data plane must send for `frame`, built here from the
    /// RFCs: MACs swapped, VLAN kept, from the VIP to the client, ICMP type 3 code 4
    /// (IPv4, 576 bytes) or ICMPv6 type 2 (1280 bytes) naming `mtu`, quoting the packet's start.
    static func tooBigAnswer(to frame: [UInt8], l2Length: Int, mtu: Int) -> [UInt8] {
        let l3 = Array(frame[l2Length...])
        let mtuField: [UInt8] = [0, 0, UInt8(mtu >> 8), UInt8(mtu & 0xff)]
        var answer = Array(frame[6..<12]) + Array(frame[0..<6]) + Array(frame[12..<l2Length])
        if l3[0] >> 4 == 4 {
            var icmp: [UInt8] = [3, 4, 0, 0] + mtuField + l3.prefix(548)
            let checksum = PacketBuilder.internetChecksum(icmp)
            icmp[2] = UInt8(checksum >> 8); icmp[3] = UInt8(checksum & 0xff)
            var ip: [UInt8] = [0x45, 0, 0x02, 0x40, 0, 0, 0, 0, 64, 1, 0, 0] + Array(l3[16..<20]) + Array(l3[12..<16])
            let ipChecksum = PacketBuilder.internetChecksum(ip)
            ip[10] = UInt8(ipChecksum >> 8); ip[11] = UInt8(ipChecksum & 0xff)
            answer += ip + icmp
        } else {
            let source = IPAddress(wireBytes: l3[24..<40])!, destination = IPAddress(wireBytes: l3[8..<24])!
            var icmp: [UInt8] = [2, 0, 0, 0] + mtuField + l3.prefix(1232)
            let checksum = PacketBuilder.icmpv6Checksum(source: source, destination: destination, message: icmp)
            icmp[2] = UInt8(checksum >> 8); icmp[3] = UInt8(checksum & 0xff)
            answer += [0x60, 0, 0, 0, 0x04, 0xd8, 58, 64] + source.bytes + destination.bytes + icmp
        }
        return answer
    }

    private func checkEncapsulated(_ output: [UInt8], input: [UInt8], vip: Vip, l2Length: Int, l3Length: Int, quicReal: IPAddress?,
                                   routedReal: IPAddress?) -> String? {
        guard output.count > l2Length + 20 else { return "forwarded frame too short (\(output.count) bytes)" }
        guard MACAddress(bytes: output[0..<6]) == Self.nextHopMAC, MACAddress(bytes: output[6..<12]) == Self.interfaceMAC else { return "wrong MAC addresses" }
        if l2Length == 18 && Array(output[12..<16]) != Array(input[12..<16]) { return "VLAN tag not kept" }
        let etherType = Int(output[l2Length - 2]) << 8 | Int(output[l2Length - 1])
        let realFamily = vip.reals.first!.address.family
        // The fuzzer's VIPs reach all their reals one way; GUE adds a UDP header.
        let gue = vip.reals.first!.encapsulation == .gue
        let udpLength = gue ? 8 : 0
        let innerIsV4 = input[l2Length - 2] == 0x08
        var outer: Int
        let destination: IPAddress
        if realFamily == .ipv4 {
            outer = 20
            guard etherType == 0x0800 else { return "outer ethertype 0x\(String(etherType, radix: 16)), expected IPv4" }
            let header = Array(output[l2Length ..< l2Length + 20])
            guard header[0] == 0x45, header[9] == (gue ? 17 : 4), header[8] == 64 else { return "bad outer IPv4 header \(header)" }
            guard PacketBuilder.internetChecksum(header) == 0 else { return "outer IPv4 checksum wrong" }
            guard Int(header[2]) << 8 | Int(header[3]) == 20 + udpLength + l3Length else { return "outer total length wrong" }
            destination = IPAddress(wireBytes: header[16..<20])!
        } else {
            outer = 40
            guard output.count >= l2Length + 40, etherType == 0x86dd else { return "outer ethertype 0x\(String(etherType, radix: 16)), expected IPv6" }
            let header = Array(output[l2Length ..< l2Length + 40])
            guard header[0] >> 4 == 6, header[6] == (gue ? 17 : innerIsV4 ? 4 : 41), header[7] == 64 else { return "bad outer IPv6 header" }
            guard Int(header[4]) << 8 | Int(header[5]) == udpLength + l3Length else { return "outer payload length wrong" }
            destination = IPAddress(wireBytes: header[24..<40])!
        }
        if gue {
            guard output.count >= l2Length + outer + 8 else { return "no room for the GUE UDP header" }
            let udp = Array(output[l2Length + outer ..< l2Length + outer + 8])
            func be16(_ i: Int) -> Int { Int(udp[i]) << 8 | Int(udp[i + 1]) }
            guard be16(0) >= 0xc000, be16(2) == Int(ForwardingSettings.defaultGUEPort), be16(4) == 8 + l3Length, be16(6) == 0 else {
                return "bad GUE UDP header \(udp)"
            }
            outer += 8
        }
        guard Array(output[(l2Length + outer)...]) == Array(input[l2Length...]) else { return "inner packet changed" }
        guard vip.reals.contains(where: { $0.address == destination }) else { return "sent to \(destination), not a real of \(vip.key)" }
        if let quicReal, destination != quicReal { return "QUIC short header sent to \(destination), its connection ID names \(quicReal)" }
        if let routedReal, destination != routedReal { return "sent to \(destination), the client's source route names \(routedReal)" }
        if vip.reals.contains(where: { $0.address == destination && $0.weight == 0 }) && quicReal == nil {
            return "a new or known flow sent to \(destination), which is drained"
        }
        return nil
    }
}
