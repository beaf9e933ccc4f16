import Foundation

/// Turns captured packets into a pcap or pcapng file, written as it goes (so it
/// can be piped into `tcpdump -r -`). Timestamps are wall-clock nanoseconds.
///
/// - pcap: one Ethernet link type; received and sent copies are not told apart
///   in the file (a sent copy starts with the outer, encapsulating header).
/// - pcapng: interface 0 is "received", interface 1 "sent" (also in each packet's
///   direction flag), and each packet's comment says its outcome, VIP and real.
public struct PacketFileWriter: Sendable {
    public let format: CaptureFilter.Format
    public let snapLength: Int
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, taken once: the data plane stamps packets on the monotonic clock.
    private let wallClockOffset: Int64

    private static let linkTypeEthernet: UInt16 = 1

    public init(format: CaptureFilter.Format, snapLength: Int) {
        self.format = format
        self.snapLength = snapLength
        var real = timespec()
        var monotonic = timespec()
        clock_gettime(CLOCK_REALTIME, &real)
        clock_gettime(CLOCK_MONOTONIC, &monotonic)
        wallClockOffset = (Int64(real.tv_sec) - Int64(monotonic.tv_sec)) * 1_000_000_000 + Int64(real.tv_nsec) - Int64(monotonic.tv_nsec)
    }

    /// The MIME type of the file.
    public var contentType: String {
        format == .pcap ? "application/vnd.tcpdump.pcap" : "application/x-pcapng"
    }

    /// What the file starts with.
    public func header() -> Data {
        var out = Data()
        switch format {
        case .pcap:
            out.append(le: UInt32(0xa1b2_3c4d))  // nanosecond timestamps
            out.append(le: UInt16(2))
            out.append(le: UInt16(4))
            out.append(le: UInt32(0))
            out.append(le: UInt32(0))
            out.append(le: UInt32(snapLength))
            out.append(le: UInt32(PacketFileWriter.linkTypeEthernet))
        case .pcapng:
            var section = Data()
            section.append(le: UInt32(0x1a2b_3c4d))
            section.append(le: UInt16(1))
            section.append(le: UInt16(0))
            section.append(le: UInt64.max)  // section length not known in advance
            section.append(option: 4, Data("petrel capture \(PetrelVersion.string)".utf8))  // shb_userappl
            section.append(le: UInt32(0))
            out.append(block: 0x0a0d_0d0a, section)
            for (name, description) in [("received", "packets as they arrived"), ("sent", "packets as sent, encapsulated towards their real")] {
                var interface = Data()
                interface.append(le: PacketFileWriter.linkTypeEthernet)
                interface.append(le: UInt16(0))
                interface.append(le: UInt32(snapLength))
                interface.append(option: 2, Data(name.utf8))  // if_name
                interface.append(option: 3, Data(description.utf8))  // if_description
                interface.append(option: 9, Data([9]))  // if_tsresol: nanoseconds
                interface.append(le: UInt32(0))
                out.append(block: 1, interface)
            }
        }
        return out
    }

    /// One packet; `comment` (pcapng only) says what the balancer did with it.
    public func record(_ packet: CapturedPacket, comment: String) -> Data {
        let nanoseconds = UInt64(max(0, Int64(bitPattern: packet.monotonicNanoseconds) &+ wallClockOffset))
        let bytes = packet.bytes.prefix(snapLength)
        var out = Data()
        switch format {
        case .pcap:
            out.append(le: UInt32(nanoseconds / 1_000_000_000))
            out.append(le: UInt32(nanoseconds % 1_000_000_000))
            out.append(le: UInt32(bytes.count))
            out.append(le: UInt32(packet.length))
            out.append(contentsOf: bytes)
        case .pcapng:
            var body = Data()
            body.append(le: UInt32(packet.direction == .received ? 0 : 1))
            body.append(le: UInt32(nanoseconds >> 32))
            body.append(le: UInt32(nanoseconds & 0xffff_ffff))
            body.append(le: UInt32(bytes.count))
            body.append(le: UInt32(packet.length))
            body.append(contentsOf: bytes)
            body.padTo4()
            body.append(option: 1, Data(comment.utf8))  // opt_comment
            var flags = Data()
            flags.append(le: UInt32(packet.direction == .received ? 1 : 2))  // epb_flags: inbound / outbound
            body.append(option: 2, flags)
            body.append(le: UInt32(0))
            out.append(block: 6, body)
        }
        return out
    }
}

private extension Data {
    mutating func append<T: FixedWidthInteger>(le value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    mutating func padTo4() {
        while count % 4 != 0 { append(0) }
    }

    /// A pcapng option: code, length, value padded to 4 bytes.
    mutating func append(option code: UInt16, _ value: Data) {
        append(le: code)
        append(le: UInt16(value.count))
        append(value)
        padTo4()
    }

    /// A pcapng block: type, total length, body, total length.
    mutating func append(block type: UInt32, _ body: Data) {
        let total = UInt32(12 + body.count)
        append(le: type)
        append(le: total)
        append(body)
        append(le: total)
    }
}
