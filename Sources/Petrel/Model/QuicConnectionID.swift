import CPetrelABI

/// Petrel CID format v1: how a QUIC server behind Petrel writes its server id into
/// the connection IDs it issues, and how Petrel reads it back. It is the IETF
/// QUIC-LB draft's plaintext algorithm with one fixed configuration:
///
///     byte 0     bits 7-5: config rotation 0b001 = format v1; bits 4-0: length - 1
///     bytes 1-2  server id, big-endian, 1...65535 (0: no id)
///     bytes 3-   nonce, at least 4 random bytes
///
/// The data plane (bpf/lib/quic.h) reads only bytes 0-3 of the destination
/// connection ID of a short-header packet. docs/quic.md explains the choice.
public enum QuicConnectionID {
    /// The config-rotation value that marks format v1.
    public static let formatV1 = UInt8(PETREL_QUIC_CID_V1)
    /// Shortest connection ID in format v1 (1 + 2 + a 4-byte nonce).
    public static let minimumLength = Int(PETREL_QUIC_CID_MIN_LEN)
    /// Server ids a real may have.
    public static let serverIds: ClosedRange<UInt16> = 1...UInt16.max

    /// A format-v1 connection ID for `serverId` with the given nonce.
    public static func make(serverId: UInt16, nonce: [UInt8]) -> [UInt8] {
        precondition(nonce.count >= 4 && nonce.count <= 17, "the nonce is 4-17 bytes")
        let length = 3 + nonce.count
        return [formatV1 << 5 | UInt8(length - 1), UInt8(serverId >> 8), UInt8(serverId & 0xff)] + nonce
    }

    /// What the data plane makes of a UDP payload on a `quic` VIP.
    public enum Outcome: Equatable, Sendable, CustomStringConvertible {
        /// A long header (Initial, Handshake, 0-RTT, Retry): placed as any flow.
        case longHeader
        /// A short header carrying this server id.
        case serverId(UInt16)
        /// A short header in format v1 with server id 0.
        case zeroId
        /// Too short for a connection ID, or another format.
        case malformed

        public var serverId: UInt16? { if case .serverId(let id) = self { id } else { nil } }

        public var description: String {
            switch self {
            case .longHeader: "long header: placed as any new flow"
            case .serverId(let id): "short header, server id \(id)"
            case .zeroId: "short header, server id 0: normal path"
            case .malformed: "short header without a format-v1 connection ID: normal path"
            }
        }
    }

    /// Classifies a UDP payload exactly as bpf/lib/quic.h does.
    public static func classify(udpPayload payload: [UInt8]) -> Outcome {
        guard let first = payload.first else { return .malformed }
        if first & 0x80 != 0 { return .longHeader }
        guard payload.count >= 1 + minimumLength, payload[1] >> 5 == formatV1 else { return .malformed }
        let id = UInt16(payload[2]) << 8 | UInt16(payload[3])
        return id == 0 ? .zeroId : .serverId(id)
    }
}

/// `explain()`'s account of QUIC connection-ID routing for one packet.
public struct QuicRouting: Equatable, Sendable {
    public let outcome: QuicConnectionID.Outcome
    /// The real with that server id on the VIP; nil: the normal path decides.
    public let real: IPAddress?
}
