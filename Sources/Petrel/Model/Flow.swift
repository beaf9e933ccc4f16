import CPetrelABI

/// A client's flow towards a VIP: the 5-tuple the data plane hashes.
public struct Flow: Hashable, Sendable, CustomStringConvertible {
    public var proto: L4Protocol
    public var source: IPAddress
    public var sourcePort: UInt16
    public var destination: IPAddress
    public var destinationPort: UInt16

    public init(proto: L4Protocol, source: IPAddress, sourcePort: UInt16, destination: IPAddress, destinationPort: UInt16) {
        self.proto = proto
        self.source = source
        self.sourcePort = sourcePort
        self.destination = destination
        self.destinationPort = destinationPort
    }

    public var description: String {
        func endpoint(_ address: IPAddress, _ port: UInt16) -> String {
            address.family == .ipv6 ? "[\(address)]:\(port)" : "\(address):\(port)"
        }
        return "\(proto.rawValue) \(endpoint(source, sourcePort)) -> \(endpoint(destination, destinationPort))"
    }
}

/// The flow hash of bpf/lib/select.h, computed in Swift: it places a flow on
/// its VIP's ring, so the control plane can predict the data plane's choice.
public enum FlowHash {
    /// The seed both sides use, from the ABI header.
    public static let seed: UInt32 = PETREL_FLOW_HASH_SEED

    public static func hash(_ flow: Flow, flags: VipFlags) -> UInt32 {
        var sourceWord: UInt32
        let words = flow.source.words
        if flow.source.family == .ipv6 {
            sourceWord = JenkinsHash.hash4(words.0, words.1, words.2, words.3, seed: seed)
        } else {
            sourceWord = words.0
        }
        var ports = UInt32(flow.sourcePort) << 16 | UInt32(flow.destinationPort)
        if flags.contains(.hashDestinationPortOnly) {
            sourceWord = 0
            ports = UInt32(flow.destinationPort)
        } else if flags.contains(.hashWithoutSourcePort) {
            ports = UInt32(flow.destinationPort)
        }
        return JenkinsHash.hash3(sourceWord, ports, UInt32(flow.proto.number), seed: seed)
    }
}
