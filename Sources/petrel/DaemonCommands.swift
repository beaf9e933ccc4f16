import ArgumentParser
import Foundation
import Petrel
import PetrelAdmin

struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Make petreld re-read its config file (like SIGHUP).",
        discussion: """
        An invalid file is refused with every issue printed, and the running config stays (exit status 1). A valid one is applied as a diff; changes made through the admin API since the last load are replaced by the file's content.

        Examples:
          petrel reload
          petrel --socket /run/petrel/demo.sock reload
        """
    )
    @OptionGroup var options: SocketOptions

    func run() throws {
        let body = try options.call("POST", "/v1/reload")
        let change = try AdminJSON.decode(ChangeDocument.self, from: body)
        print("reloaded: generation \(change.generation ?? 0); VIPs +\(change.vipsAdded) -\(change.vipsRemoved) ~\(change.vipsChanged), "
            + "reals +\(change.realsAdded) -\(change.realsRemoved), \(change.ringSlotsChanged) ring slots changed")
        for setting in change.restartNeeded ?? [] { print("not applied until petreld restarts: \(setting)") }
    }
}

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show the data plane's counters: by reason, per VIP, per real.",
        discussion: """
        Examples:
          petrel stats
          petrel stats --json
          petrel stats --watch 2      # redraw every 2 seconds with rates, until Ctrl-C
        """
    )
    @OptionGroup var options: SocketOptions
    @Flag(help: "Print the JSON the daemon sent.") var json = false
    @Option(help: "Redraw every SECONDS, with per-second rates.") var watch: Double?

    func validate() throws {
        if let watch, watch < 0.1 { throw ValidationError("--watch: must be at least 0.1 seconds, got \(watch)") }
    }

    func run() throws {
        if json, watch == nil { return printJSON(try options.call("GET", "/v1/stats")) }
        var previous: StatsDocument?
        while true {
            let stats = try options.get(StatsDocument.self, "/v1/stats")
            if json {
                printJSON(AdminJSON.encode(stats))
            } else {
                if watch != nil { print("\u{1B}[H\u{1B}[2J", terminator: "") }
                render(stats, previous: previous)
            }
            guard let watch else { return }
            fflush(nil)  // each frame now, also when the output is a pipe (nil: every stream, no global)
            previous = stats
            Thread.sleep(forTimeInterval: watch)
        }
    }

    private func render(_ stats: StatsDocument, previous: StatsDocument?) {
        let seconds = watch ?? 1
        func rate(_ now: UInt64, _ before: UInt64?) -> String {
            guard let before, now >= before else { return "" }
            return String(format: "%.1f/s", Double(now - before) / seconds)
        }
        let withRate = previous != nil
        let globals = stats.global.filter { $0.value > 0 || $0.key == "rx" }.sorted { $0.key < $1.key }
        printTable(["COUNTER", "PACKETS"] + (withRate ? ["RATE"] : []),
                   globals.map { [$0.key, "\($0.value)"] + (withRate ? [rate($0.value, previous?.global[$0.key])] : []) })
        print("")
        func traffic(_ title: String, _ rows: [TrafficDocument], _ before: [TrafficDocument]?) {
            printTable([title, "PACKETS", "BYTES"] + (withRate ? ["PPS"] : []), rows.map { row in
                [row.name, "\(row.packets)", "\(row.bytes)"]
                    + (withRate ? [rate(row.packets, before?.first { $0.name == row.name }?.packets)] : [])
            })
        }
        traffic("VIP", stats.vips, previous?.vips)
        print("")
        traffic("REAL", stats.reals, previous?.reals)
    }
}

struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Show which VIP a flow matches and which real it goes to, and why.",
        discussion: """
        The answer is computed from the same hash and ring as the data plane, plus what the connection table remembers for the flow.

        Examples:
          petrel explain tcp 198.18.1.2:40000 198.18.100.1:80
          petrel explain udp [fd50:0:1::2]:5353 [fd50:0:100::1]:53 --json
          petrel explain tcp 198.18.1.2:40000 198.18.100.1:80 --length 1500   # does a 1500-byte packet fit?
        """
    )
    @OptionGroup var options: SocketOptions
    @Argument(help: "tcp or udp.") var proto: String
    @Argument(help: "The client: ADDRESS:PORT.") var source: String
    @Argument(help: "The VIP side: ADDRESS:PORT.") var destination: String
    @Option(help: "An IP packet size in bytes: say whether it fits once encapsulated, or is answered with ICMP too big.") var length: Int?
    @Flag(help: "Print the JSON the daemon sent.") var json = false

    func run() throws {
        guard let (src, sport) = splitHostPort(source) else { throw CLIError("source \(source): must be ADDRESS:PORT") }
        guard let (dst, dport) = splitHostPort(destination) else { throw CLIError("destination \(destination): must be ADDRESS:PORT") }
        var query = ["proto": proto, "src": src, "sport": sport, "dst": dst, "dport": dport]
        if let length { query["length"] = "\(length)" }
        if json { return printJSON(try options.call("GET", "/v1/explain", query: query)) }
        print(try options.get(ExplainDocument.self, "/v1/explain", query: query).text)
    }
}

struct RingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ring",
        abstract: "Show each real's share of a VIP's Maglev ring.",
        discussion: """
        Examples:
          petrel ring tcp/198.18.100.1:80
        """
    )
    @OptionGroup var options: SocketOptions
    @Argument(help: "The VIP: PROTO/ADDRESS:PORT.") var vip: String
    @Flag(help: "Print the JSON the daemon sent.") var json = false

    func run() throws {
        let key = try VipSpec.parse(vip)
        if json { return printJSON(try options.call("GET", "/v1/ring/\(key.pathComponent)")) }
        let ring = try options.get(RingDocument.self, "/v1/ring/\(key.pathComponent)")
        print("\(ring.vip): \(ring.ringSize) slots")
        printTable(["REAL", "WEIGHT", "SLOTS", "SHARE"], ring.reals.map {
            [$0.address, "\($0.weight)", "\($0.slots)", String(format: "%.2f%%", $0.share * 100)]
        })
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show petreld's state: config generation, interface, attachment, adopted maps, reloads, health, BGP.",
        discussion: """
        Examples:
          petrel status
          petrel status --json
        """
    )
    @OptionGroup var options: SocketOptions
    @Flag(help: "Print the JSON the daemon sent.") var json = false

    func run() throws {
        if json { return printJSON(try options.call("GET", "/v1/status")) }
        let status = try options.get(StatusDocument.self, "/v1/status")
        let rows: [(String, String)] = [
            ("config", status.config),
            ("generation", "\(status.generation)"),
            ("interface", "\(status.interface) (\(status.attachMode))"),
            ("attached", status.program.map { "yes (program id \($0.id), tag \($0.tag))" } ?? (status.attached ? "yes" : "no")),
            ("adopted maps", status.adopted ? "yes (pinned by an earlier petreld)" : "no"),
            ("pin path", status.pinPath),
            ("next hop", status.nextHopMAC),
            ("VIPs", "\(status.vips)"),
            ("reloads", "\(status.reloadsSucceeded) succeeded, \(status.reloadsFailed) failed"),
        ]
        var all = rows + (status.bgp?.rows ?? [])
        if let health = status.health, health.checked > 0 || !health.vipsWithoutService.isEmpty {
            all.append(("health", "\(health.checked) reals checked: \(health.up) up, \(health.down) down (petrel real list)"))
            if !health.vipsWithoutService.isEmpty {
                all.append(("no service", health.vipsWithoutService.joined(separator: ", ") + " (no real in service: packets dropped)"))
            }
        }
        for (name, value) in all { print((name + ":").padding(toLength: 14, withPad: " ", startingAt: 0) + value) }
        for issue in status.lastReloadIssues ?? [] { print("last reload refused: \(issue)") }
        for setting in status.restartNeeded ?? [] { print("warning: the file changes a setting that needs a restart: \(setting)") }
    }
}
