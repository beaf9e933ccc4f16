import ArgumentParser
import Dispatch
import Foundation
import Petrel
import PetrelAdmin

struct FlowsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flows",
        abstract: "Follow the flow log: the data plane's new-connection decisions, as JSON lines.",
        discussion: """
        Each line is one decision: time, protocol, family, client, client_port, vip, destination_port, real, reason (ring, ring_after_miss, quic_cid, source_prefix), remembered, tables_bypassed, cpu. Connection-table hits are not decisions and are not logged. docs/operating.md describes every field.

        The data plane logs only while someone follows (that is what makes it free otherwise), so there is no history to show: --follow is required. It runs until --count decisions or --seconds have passed, or Ctrl-C; then a summary goes to standard error: decisions shown, dropped because this reader was too slow, and lost in the kernel (its ring was full).

        Examples:
          petrel flows --follow
          petrel flows --follow --vip tcp/198.18.100.1:80 --count 20
          petrel flows --follow --sample 100 | jq -r .real | sort | uniq -c
        """
    )
    @OptionGroup var options: SocketOptions
    @Flag(help: "Print decisions as they are made (required).") var follow = false
    @Option(help: ArgumentHelp("Only decisions for this VIP (PROTO/ADDRESS:PORT).", valueName: "vip")) var vip: String?
    @Option(help: "Stop after this many decisions.") var count: Int?
    @Option(help: "Stop after this many seconds.") var seconds: Int?
    @Option(help: "Log one decision in N (per CPU), chosen in the data plane.") var sample: Int = 1

    func validate() throws {
        guard follow else {
            throw ValidationError("--follow is required: the data plane logs decisions only while someone follows, so there is no history")
        }
        if let vip { _ = try VipSpec.parse(vip) }
        // The API's own rules (FlowLogQuery), so the CLI and petreld refuse alike.
        if let issue = FlowLogQuery.sampleRule.check(sample, at: ["--sample"]) { throw ValidationError("\(issue)") }
        if let count, count < 1 { throw ValidationError("--count: must be at least 1, got \(count)") }
        if let seconds, seconds < 1 { throw ValidationError("--seconds: must be at least 1, got \(seconds)") }
    }

    func run() throws {
        let only = try vip.map { try VipSpec.parse($0) }
        let tally = Tally()
        // Ctrl-C: say what was seen, then stop.
        signal(SIGINT, SIG_IGN)
        let interrupt = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        interrupt.setEventHandler {
            tally.report(interrupted: true)
            Glibc.exit(0)
        }
        interrupt.resume()

        // A request lasts at most FlowLogQuery.secondsRule's upper bound; chain them.
        let started = Date()
        while true {
            var query = FlowLogQuery.defaults
            query.vip = only
            query.sample = sample
            if let count {
                let remaining = count - tally.shown
                if remaining <= 0 { break }
                query.count = min(remaining, FlowLogQuery.countRule.range.upperBound)
            }
            if let seconds {
                let remaining = Int((Double(seconds) - Date().timeIntervalSince(started)).rounded(.up))
                if remaining <= 0 { break }
                query.seconds = min(remaining, FlowLogQuery.secondsRule.range.upperBound)
            }
            try followOnce(query, tally: tally)
        }
        tally.report(interrupted: false)
    }

    /// One request: prints its lines as they come, adds its summary to the tally.
    private func followOnce(_ query: FlowLogQuery, tally: Tally) throws {
        var partial = Data()
        let answer: AdminClient.StreamedResponse
        do {
            answer = try options.client.stream(HTTPRequest(method: "GET", path: "/v1/flows", query: query.parameters)) { bytes in
                partial.append(bytes)
                guard let end = partial.lastIndex(of: 0x0A) else { return true }
                let lines = partial[...end]
                FileHandle.standardOutput.write(Data(lines))
                tally.add(shown: lines.filter { $0 == 0x0A }.count)
                partial = Data(partial[partial.index(after: end)...])
                return true
            }
        } catch {
            throw CLIError(error.description)
        }
        guard (200..<300).contains(answer.response.status) else {
            let document = try? AdminJSON.decode(ErrorDocument.self, from: answer.response.body)
            throw CLIError("petreld refused (\(answer.response.status)): \(document?.error ?? String(decoding: answer.response.body, as: UTF8.self))")
        }
        guard let text = answer.trailers[FlowLogSummary.trailer.lowercased()],
              let summary = try? AdminJSON.decode(FlowLogSummary.self, from: Data(text.utf8)) else {
            throw CLIError("the flow log ended early: \(answer.trailers["petrel-stream-end"] ?? "petreld closed the connection")")
        }
        tally.add(summary)
    }

    /// What was seen so far; read by the Ctrl-C handler on another thread.
    final class Tally: @unchecked Sendable {
        private let lock = NSLock()
        private var shownLines = 0
        private var dropped = 0
        private var lost = 0

        var shown: Int { lock.withLock { shownLines } }
        func add(shown: Int) { lock.withLock { shownLines += shown } }
        func add(_ summary: FlowLogSummary) {
            lock.withLock {
                dropped += summary.dropped
                lost += summary.lostInKernel
            }
        }

        func report(interrupted: Bool) {
            let line = lock.withLock {
                "petrel flows: \(shownLines) decision(s) shown, \(dropped) dropped (this reader was too slow), "
                    + "\(lost) lost in the kernel (its ring was full)\(interrupted ? "; the last second's figures may be missing" : "")\n"
            }
            FileHandle.standardError.write(Data(line.utf8))
        }
    }
}
