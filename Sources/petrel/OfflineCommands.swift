import ArgumentParser
import Foundation
import Petrel
import PetrelBPF
import PetrelConfig

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a config file without a daemon.",
        discussion: """
        Prints every issue as FILE:LINE:COLUMN: FIELD: MESSAGE. Exit status 0 when the file is valid, 2 when it is not (the status petreld exits with when it refuses to start on it).

        Examples:
          petrel check --config /etc/petrel/petrel.yaml
          petrel check --config config/demo.yaml
        """
    )
    @Option(help: "The config file.") var config: String

    func run() throws {
        do {
            let settings = try ConfigLoader.load(path: config)
            let reals = Set(settings.vips.flatMap { $0.reals.map(\.address) })
            print("\(config): OK (\(settings.vips.count) VIPs, \(reals.count) distinct reals, interface \(settings.interface))")
        } catch {
            for issue in error.issues { print(issue) }
            print("\(config): \(error.issues.count) issue(s)")
            throw ExitCode(ExitStatus.invalidConfig)
        }
    }
}

struct DecapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decap",
        abstract: "Attach or detach the decapsulator on a real server (no daemon needed).",
        discussion: """
        The decapsulator strips the IP-in-IP / IPv6 encapsulation petreld adds, and GUE (UDP to the GUE port, default 6080), for packets whose outer destination is one of the real's addresses. Malformed GUE is dropped and counted. It stays attached after petrel exits.
        """,
        subcommands: [Attach.self, Detach.self]
    )

    struct Attach: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "attach",
            abstract: "Attach the decapsulator to an interface.",
            discussion: """
            Examples:
              petrel decap attach --interface eth0 --address 198.18.3.11 --address fd50:0:3::11
              petrel decap attach --interface veth0 --address 198.18.3.11 --mode generic
              petrel decap attach --interface eth0 --address 198.18.3.11 --gue-port 7000
              petrel decap attach --interface eth0 --address 198.18.3.11 --no-gue
            """
        )
        @Option(help: "The interface encapsulated packets arrive on.") var interface: String
        @Option(name: .customLong("address"), help: "A local address to decapsulate for; repeat for more.") var addresses: [String] = []
        @Option(help: "native or generic.") var mode: String = "native"
        @Option(help: "UDP port of GUE packets (petreld's encapsulation.gue_port).")
        var guePort: Int = Int(Decapsulator.defaultGUEPort)
        @Flag(help: "Leave UDP alone: strip IP-in-IP only.") var noGue = false

        func validate() throws {
            guard !addresses.isEmpty else { throw ValidationError("--address: give at least one local address") }
            for address in addresses where IPAddress(address) == nil {
                throw ValidationError("--address: must be an IPv4 or IPv6 address, got \(address)")
            }
            guard XDPMode(rawValue: mode) != nil else { throw ValidationError("--mode: must be native or generic, got \(mode)") }
            guard (1...65_535).contains(guePort) else { throw ValidationError("--gue-port: must be between 1 and 65535, got \(guePort)") }
        }

        func run() throws {
            do {
                let decapsulator = try Decapsulator(localAddresses: addresses.compactMap(IPAddress.init),
                                                    guePort: noGue ? nil : UInt16(guePort))
                try decapsulator.attach(interface: interface, mode: XDPMode(rawValue: mode) ?? .native)
            } catch {
                throw CLIError("decap attach: \(error)")
            }
            print("decapsulator attached to \(interface) (\(mode)) for \(addresses.joined(separator: ", "))"
                  + (noGue ? ", IP-in-IP only" : ", GUE on UDP port \(guePort)"))
        }
    }

    struct Detach: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "detach",
            abstract: "Detach the decapsulator from an interface (other XDP programs stay).",
            discussion: """
            Examples:
              petrel decap detach --interface eth0
            """
        )
        @Option(help: "The interface.") var interface: String

        func run() throws {
            do {
                try Decapsulator.detach(interface: interface)
            } catch {
                throw CLIError("decap detach: \(error)")
            }
            print("decapsulator detached from \(interface)")
        }
    }
}
