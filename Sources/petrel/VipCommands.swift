import ArgumentParser
import Foundation
import Petrel
import PetrelAdmin

struct VipCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vip",
        abstract: "List, create, replace and delete VIPs on the running petreld.",
        subcommands: [List.self, Add.self, Replace.self, Delete.self]
    )
    @OptionGroup var options: SocketOptions

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List the VIPs with their flags and reals.",
            discussion: """
            Examples:
              petrel vip list
              petrel vip list --json
            """
        )
        @OptionGroup var options: SocketOptions
        @Flag(help: "Print the JSON the daemon sent.") var json = false

        func run() throws {
            if json { return printJSON(try options.call("GET", "/v1/vips")) }
            let vips = try options.get([VipDocument].self, "/v1/vips")
            if vips.isEmpty { return print("no VIPs") }
            for vip in vips {
                let key = try vip.key()
                let flags = (vip.flags ?? []).isEmpty ? "" : "  flags " + (vip.flags ?? []).joined(separator: ",")
                print("\(key)\(flags)")
                for real in vip.reals ?? [] {
                    print("  \(real.address)  weight \(real.weight ?? 1)\((real.weight ?? 1) == 0 ? " (draining)" : "")")
                }
                for route in vip.sourceRoutes ?? [] {
                    print("  source \(route.prefix) -> \(route.real)")
                }
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Create a VIP; refused if it exists (use `vip set` to replace one).",
            discussion: """
            Reals are ADDRESS or ADDRESS=WEIGHT (default weight 1). Flags are the config file's names: hash_without_source_port, lru_bypass, hash_destination_port_only. A VIP without reals drops its traffic, so creating one takes --no-reals instead of --real. A source route PREFIX=REAL sends new connections from that client prefix to that real (one of the VIP's), the longest prefix winning.

            Examples:
              petrel vip add tcp/198.18.100.1:80 --real 198.18.3.11 --real 198.18.3.12=2
              petrel vip add tcp/198.18.100.1:80 --real 198.18.3.11 --real 198.18.3.12 --source-route 10.0.0.0/8=198.18.3.12
              petrel vip add udp/[fd50:0:100::1]:53 --real fd50:0:3::11 --flag lru_bypass
              petrel vip add tcp/198.18.100.2:* --real fd50:0:3::11
              petrel vip add tcp/198.18.100.3:443 --no-reals
            """
        )
        @OptionGroup var options: SocketOptions
        @OptionGroup var definition: VipDefinition

        func validate() throws { try definition.validate() }

        func run() throws {
            try definition.send(options, replace: false, verb: "created")
        }
    }

    struct Replace: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Create a VIP or replace it whole: its reals and flags become exactly the ones given.",
            discussion: """
            Reals not listed are removed (their established flows break; drain them first with `petrel real drain` to avoid that). Leaving a VIP with no reals drops its traffic, so that takes --no-reals. To change one real, `petrel real add|del|weight|drain` are safer. Source routes not listed are removed too. Prints what changed: reals added, removed and reweighted, flags, source routes.

            Examples:
              petrel vip set tcp/198.18.100.1:80 --real 198.18.3.11 --real 198.18.3.12=2
              petrel vip set tcp/198.18.100.1:80 --real 198.18.3.11 --flag hash_without_source_port
              petrel vip set tcp/198.18.100.1:80 --real 198.18.3.11 --real 198.18.3.12 --source-route 10.1.0.0/16=198.18.3.11
              petrel vip set tcp/198.18.100.1:80 --no-reals
            """
        )
        @OptionGroup var options: SocketOptions
        @OptionGroup var definition: VipDefinition

        func validate() throws { try definition.validate() }

        func run() throws {
            try definition.send(options, replace: true, verb: "updated")
        }
    }

    /// The VIP, reals and flags `vip add` and `vip set` take.
    struct VipDefinition: ParsableArguments {
        @Argument(help: "The VIP: PROTO/ADDRESS:PORT.") var vip: String
        @Option(name: .customLong("real"), help: "A real: ADDRESS or ADDRESS=WEIGHT; repeat for more.") var reals: [String] = []
        @Flag(help: "Leave the VIP with no reals (its traffic is dropped).") var noReals = false
        @Option(name: .customLong("flag"), help: "A VIP flag; repeat for more.") var flags: [String] = []
        @Option(name: .customLong("source-route"), help: "A client prefix pinned to one of the reals: PREFIX=REAL; repeat for more.")
        var sourceRoutes: [String] = []

        func validate() throws {
            if reals.isEmpty && !noReals {
                throw ValidationError("give the VIP's reals with --real, or --no-reals to leave it without any (its traffic is then dropped)")
            }
            if !reals.isEmpty && noReals { throw ValidationError("--no-reals contradicts --real") }
        }

        func send(_ options: SocketOptions, replace: Bool, verb: String) throws {
            let key = try VipSpec.parse(vip)
            let realDocuments = try reals.map { text -> RealDocument in
                let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 1 || UInt32(parts[1]) != nil else { throw CLIError("--real \(text): the weight must be a number") }
                return RealDocument(address: parts[0], weight: parts.count == 2 ? UInt32(parts[1]) : 1)
            }
            // Only the form is checked here; petreld's answer names what else is wrong (source_routes[0].real: ...).
            let routeDocuments = try sourceRoutes.map { text -> SourceRouteDocument in
                let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2 else { throw CLIError("--source-route \(text): must be PREFIX=REAL, like 10.0.0.0/8=198.18.3.11") }
                return SourceRouteDocument(prefix: parts[0], real: parts[1])
            }
            let document = VipDocument(protocol: key.proto.rawValue, address: "\(key.address)", port: Int(key.port),
                                       flags: flags, reals: realDocuments, sourceRoutes: routeDocuments.isEmpty ? nil : routeDocuments)
            let body: Data
            do {
                body = try options.call("POST", "/v1/vips", query: replace ? [:] : ["replace": "false"], body: AdminJSON.encode(document))
            } catch let error as CLIError where !replace && error.description.contains("(409)") {
                throw CLIError("VIP \(key) already exists: `petrel vip set` replaces it whole, `petrel real add|del|weight` change one real")
            }
            let change = try AdminJSON.decode(ChangeDocument.self, from: body)
            let lines = change.changes ?? []
            if change.created == true {
                print("VIP \(key) " + (lines.first ?? "created"))
                for line in lines.dropFirst() { print("  \(line)") }
            } else if lines == ["unchanged"] {
                print("VIP \(key) unchanged")
            } else {
                print("VIP \(key) \(verb):")
                for line in lines { print("  \(line)") }
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "del",
            abstract: "Delete a VIP; its flows stop being forwarded.",
            discussion: """
            Examples:
              petrel vip del tcp/198.18.100.1:80
            """
        )
        @OptionGroup var options: SocketOptions
        @Argument(help: "The VIP: PROTO/ADDRESS:PORT.") var vip: String

        func run() throws {
            let spec = VipSpec(key: try VipSpec.parse(vip))
            _ = try options.call("DELETE", spec.path)
            print("VIP \(spec) deleted")
        }
    }
}

extension VipSpec {
    init(key: VipKey) { self.key = key }
}

struct RealCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "real",
        abstract: "List, add, delete, reweight and drain the reals of a VIP on the running petreld.",
        subcommands: [List.self, Add.self, Delete.self, Weight.self, Drain.self]
    )
    @OptionGroup var options: SocketOptions

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Add a real to a VIP.",
            discussion: """
            Examples:
              petrel real add tcp/198.18.100.1:80 198.18.3.14
              petrel real add tcp/198.18.100.1:80 198.18.3.14 --weight 2
            """
        )
        @OptionGroup var options: SocketOptions
        @Argument(help: "The VIP: PROTO/ADDRESS:PORT.") var vip: String
        @Argument(help: "The real's address.") var real: String
        @Option(help: "Its weight (0 adds it drained).") var weight: UInt32 = 1

        func run() throws {
            let spec = VipSpec(key: try VipSpec.parse(vip))
            _ = try options.call("POST", spec.path + "/reals", body: AdminJSON.encode(RealDocument(address: real, weight: weight)))
            print("real \(real) added to \(spec) with weight \(weight)")
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "del",
            abstract: "Remove a real from a VIP at once (established flows to it break; drain first to avoid that).",
            discussion: """
            Examples:
              petrel real del tcp/198.18.100.1:80 198.18.3.14
            """
        )
        @OptionGroup var options: SocketOptions
        @Argument(help: "The VIP: PROTO/ADDRESS:PORT.") var vip: String
        @Argument(help: "The real's address.") var real: String

        func run() throws {
            let spec = VipSpec(key: try VipSpec.parse(vip))
            _ = try options.call("DELETE", spec.path + "/reals/\(real)")
            print("real \(real) removed from \(spec)")
        }
    }

    struct Weight: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "weight",
            abstract: "Set a real's weight on a VIP: its share of new connections.",
            discussion: """
            Only the ring slots whose real changes are rewritten; established flows stay.

            Examples:
              petrel real weight tcp/198.18.100.1:80 198.18.3.13 3
            """
        )
        @OptionGroup var options: SocketOptions
        @Argument(help: "The VIP: PROTO/ADDRESS:PORT.") var vip: String
        @Argument(help: "The real's address.") var real: String
        @Argument(help: "The new weight, 0...1000000 (0 drains).") var weight: UInt32

        func validate() throws {
            guard weight <= Real.maxWeight else { throw ValidationError("weight: must be between 0 and \(Real.maxWeight), got \(weight)") }
        }

        func run() throws {
            let spec = VipSpec(key: try VipSpec.parse(vip))
            _ = try options.call("PUT", spec.path + "/reals/\(real)/weight", body: AdminJSON.encode(WeightDocument(weight: weight)))
            print("real \(real) of \(spec) now has weight \(weight)")
        }
    }

    struct Drain: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "drain",
            abstract: "Drain a real: weight 0, so it gets no new connections while established ones stay.",
            discussion: """
            Examples:
              petrel real drain tcp/198.18.100.1:80 198.18.3.13
            """
        )
        @OptionGroup var options: SocketOptions
        @Argument(help: "The VIP: PROTO/ADDRESS:PORT.") var vip: String
        @Argument(help: "The real's address.") var real: String

        func run() throws {
            let spec = VipSpec(key: try VipSpec.parse(vip))
            _ = try options.call("PUT", spec.path + "/reals/\(real)/weight", body: AdminJSON.encode(WeightDocument(weight: 0)))
            print("real \(real) of \(spec) is draining (weight 0)")
        }
    }
}
