import ArgumentParser
import Foundation
import Petrel
import PetrelAdmin

extension RealCommand {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List the reals of every VIP (or one) with their weight and health.",
            discussion: """
            STATE is up or down (health checks) or unchecked (check type none). A real is in
            service when its weight is above 0 and it is not down. SINCE is when the state
            last changed (or checking began); LAST is the last probe's result, and the reason
            of the last change follows it.

            Examples:
              petrel real list
              petrel real list tcp/198.18.100.1:80
              petrel real list --json
            """
        )
        @OptionGroup var options: SocketOptions
        @Argument(help: "Only this VIP: PROTO/ADDRESS:PORT.") var vip: String?
        @Flag(help: "Print the JSON the daemon sent.") var json = false

        func run() throws {
            if json, vip == nil { return printJSON(try options.call("GET", "/v1/health")) }
            let document = try options.get(HealthDocument.self, "/v1/health")
            let only = try vip.map { "\(try VipSpec.parse($0))" }
            let reals = document.reals.filter { only == nil || $0.vip == only }
            if json { return printJSON(AdminJSON.encode(reals)) }
            if let only, reals.isEmpty { throw CLIError("VIP \(only) has no reals (or does not exist)") }
            let rows = [["VIP", "REAL", "WEIGHT", "CHECK", "STATE", "SINCE", "LAST"]] + reals.map { real in
                [real.vip, real.real, "\(real.weight)" + (real.weight == 0 ? " (drained)" : ""), real.check,
                 real.state + (real.inService ? "" : " (out)"), real.since ?? "-",
                 (real.lastResult ?? "-") + (real.state == "unchecked" || real.wentDown + real.wentUp == 0 ? "" : "; changed: \(real.reason ?? "")")]
            }
            let widths = (0..<7).map { column in rows.map { $0[column].count }.max() ?? 0 }
            for row in rows {
                print(row.enumerated().map { $0.offset == 6 ? $0.element : $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                    .joined(separator: "  "))
            }
            if !document.vipsWithoutService.isEmpty {
                print("no real in service (packets dropped, counted as drop_no_real): \(document.vipsWithoutService.joined(separator: ", "))")
            }
        }
    }
}
