import ArgumentParser
import Foundation
import Petrel
import PetrelAdmin

struct CaptureCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "capture",
        abstract: "Capture the packets the data plane handles, to a pcap or pcapng file.",
        discussion: """
        The data plane copies the packets that match (headers and first bytes, up to --snaplen) to petreld, which streams them as they come. The capture stops after --count packets or --seconds, whichever is first, or on Ctrl-C; a summary goes to standard error (packets written, lost because the data plane's ring was full or because this client read too slowly).

        --direction received records packets as they arrived; sent records forwarded packets as they left, encapsulated towards their real; both records each forwarded packet twice. In pcapng (the default), received and sent copies are two interfaces ("received", "sent") and each packet's comment says its outcome, VIP and real; pcap has neither.

        petreld runs up to \(CaptureSlots.count) captures at once; one more is refused (HTTP 409) until one ends.

        Examples:
          petrel capture --vip tcp/198.18.100.1:80 --count 100 -w - | tcpdump -nr -
          petrel capture --outcome drop --seconds 30 -w drops.pcapng
          petrel capture --outcome drop_too_big --direction received -w big.pcapng
          petrel capture --protocol icmp --family ipv6 -w icmp6.pcapng
          petrel capture --vip udp/198.18.100.1:53 --direction both --sample 100 --count 1000 --format pcap -w dns.pcap
          tshark -r drops.pcapng -T fields -e frame.comment
        """
    )
    @OptionGroup var options: SocketOptions

    @Option(help: ArgumentHelp("Only packets for this VIP (PROTO/ADDRESS:PORT).", valueName: "vip")) var vip: String?
    @Option(help: ArgumentHelp("Only packets sent to (or meant for) this real.", valueName: "address")) var real: String?
    @Option(help: ArgumentHelp("Only these outcomes (comma-separated): forward, pass, drop, or a reason like drop_too_big, pass_not_vip.",
                               valueName: "outcomes")) var outcome: String?
    @Option(help: ArgumentHelp("Only ipv4 or ipv6 packets.", valueName: "family")) var family: String?
    @Option(name: .customLong("protocol"), help: ArgumentHelp("Only tcp, udp or icmp (ICMP and ICMPv6) packets.", valueName: "protocol"))
    var packetProtocol: String?
    @Option(help: ArgumentHelp("Record 1 of every N matching packets.", valueName: "N")) var sample: Int?
    @Option(help: ArgumentHelp("received, sent (encapsulated, forwarded packets only) or both.", valueName: "direction")) var direction: String?
    @Option(help: ArgumentHelp("Stop after this many packets (default 100).", valueName: "packets")) var count: Int?
    @Option(help: ArgumentHelp("Stop after this many seconds (default 60).", valueName: "seconds")) var seconds: Int?
    @Option(help: ArgumentHelp("Bytes recorded of each packet, 64 to 256 (default 256).", valueName: "bytes")) var snaplen: Int?
    @Option(help: ArgumentHelp("pcapng (default: with comments) or pcap.", valueName: "format")) var format: String?
    @Option(name: .customShort("w"), help: ArgumentHelp("Write to this file; - for standard output.", valueName: "file")) var output: String

    /// The query petreld reads (CaptureQuery), from the options given.
    var query: [String: String] {
        let values: [(String, String?)] = [
            ("vip", vip), ("real", real), ("outcome", outcome), ("family", family), ("protocol", packetProtocol),
            ("sample", sample.map(String.init)), ("direction", direction), ("count", count.map(String.init)),
            ("seconds", seconds.map(String.init)), ("snaplen", snaplen.map(String.init)), ("format", format),
        ]
        return values.reduce(into: [:]) { query, pair in if let value = pair.1 { query[pair.0] = value } }
    }

    func validate() throws {
        // The same checks petreld makes, so a mistake is named before anything is opened.
        do {
            try CaptureQuery.filter(from: query).validate(maxSeconds: .max)
        } catch {
            throw ValidationError("\(error)")
        }
        if output == "-", isatty(STDOUT_FILENO) != 0 {
            throw ValidationError("-w -: standard output is a terminal; pipe it (e.g. | tcpdump -nr -) or give a file name")
        }
    }

    func run() throws {
        let file: FileHandle
        if output == "-" {
            file = FileHandle.standardOutput
        } else {
            // open(2) in place, not FileManager.createFile: that writes a temporary file and renames
            // it over the path, which run as root turns -w /dev/null into a regular file.
            let descriptor = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                throw CLIError("-w \(output): cannot open the file (\(String(cString: strerror(errno))))")
            }
            file = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        }
        var writeFailed: String?
        let answer: AdminClient.StreamedResponse
        do {
            answer = try options.client.stream(HTTPRequest(method: "GET", path: "/v1/capture", query: query)) { bytes in
                do {
                    try file.write(contentsOf: bytes)
                    return true
                } catch {
                    // A reader that went (tcpdump -c, head): stop, which ends the capture in petreld.
                    writeFailed = "\(error)"
                    return false
                }
            }
        } catch {
            throw CLIError(error.description)
        }
        try? file.close()
        guard (200..<300).contains(answer.response.status) else {
            if let document = try? AdminJSON.decode(ErrorDocument.self, from: answer.response.body) {
                throw CLIError("petreld refused (\(answer.response.status)): \(document.error)")
            }
            throw CLIError("petreld answered \(answer.response.status): \(String(decoding: answer.response.body, as: UTF8.self))")
        }
        if let writeFailed {
            FileHandle.standardError.write(Data("petrel capture: stopped, the output could not be written (\(writeFailed))\n".utf8))
            return
        }
        let summary = answer.trailers["petrel-capture-summary"] ?? answer.trailers["petrel-stream-end"] ?? "no summary"
        FileHandle.standardError.write(Data("petrel capture: \(summary)\n".utf8))
        guard answer.complete else { throw CLIError("petrel capture: the connection to petreld broke before the capture ended") }
    }
}
