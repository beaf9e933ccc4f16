import ArgumentParser
import Foundation
import PetrelAdmin

struct TopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "A live view of the data plane: rates per VIP and per real, outcomes and drops.",
        discussion: """
        Refreshes every second from the admin API (GET /v1/stats): packets/s and bits/s per
        VIP and per real (with each real's share of the forwarded packets), the packets
        received, forwarded, answered with ICMP, passed and dropped per second, new connections per second and
        the connection-table hit ratio (for the whole data plane: it counts those globally),
        and each drop reason per second.

        Keys: p sort by packets/s, b by bits/s, n by name; q or Ctrl-C quits and restores
        the terminal. The view follows the terminal's size (80x24 is enough).

        Examples:
          petrel top
          petrel top --sort bits --interval 2
        """
    )
    @OptionGroup var options: SocketOptions
    @Option(help: "Seconds between refreshes.") var interval: Double = 1
    @Option(help: "The first order: packets, bits or name.") var sort: String = "packets"

    func validate() throws {
        guard interval >= 0.2, interval <= 60 else { throw ValidationError("--interval: must be between 0.2 and 60 seconds, got \(interval)") }
        guard TopSort(rawValue: sort) != nil else { throw ValidationError("--sort: must be packets, bits or name, got \(sort)") }
    }

    func run() throws {
        let terminal = try Terminal()
        defer { terminal.restore() }
        var view = TopView(title: options.socket, rates: nil, sort: TopSort(rawValue: sort) ?? .packets, error: nil)
        var previous: (stats: StatsDocument, at: ContinuousClock.Instant)?
        var nextSample = ContinuousClock.now
        var size = terminal.size
        while true {
            if ContinuousClock.now >= nextSample {
                nextSample = ContinuousClock.now + .milliseconds(Int(interval * 1000))
                do {
                    let stats = try options.get(StatsDocument.self, "/v1/stats")
                    let now = ContinuousClock.now
                    if let previous {
                        let elapsed = now - previous.at
                        view.rates = TopRates(from: previous.stats, to: stats,
                                              seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
                    }
                    previous = (stats, now)
                    view.error = nil
                } catch {
                    view.error = "\(error)"  // petreld restarting: keep the last rates, say why, try again
                }
                terminal.draw(view.lines(columns: size.columns, rows: size.rows), size: size)
            }
            // Keys and resizes are handled within a tenth of a second.
            let keys = terminal.keys(within: min(0.1, max(0, (nextSample - ContinuousClock.now) / .seconds(1))))
            var redraw = false
            for key in keys {
                if key == UInt8(ascii: "q") || key == UInt8(ascii: "Q") || key == 3 { return }  // 3: Ctrl-C
                if let order = TopSort.allCases.first(where: { UInt8(ascii: $0.key.unicodeScalars.first!) == key }) {
                    view.sort = order
                    redraw = true
                }
            }
            let current = terminal.size
            if current != size || redraw {
                size = current
                terminal.draw(view.lines(columns: size.columns, rows: size.rows), size: size)
            }
        }
    }
}
