// petrel-fuzz: feeds the balancer in the kernel with random and mutated packets and
// checks every verdict, every output byte and every counter.
//
//   swift run -c release petrel-fuzz [--packets N] [--seed S] [--apply-every N]
import ArgumentParser
import Foundation
import Petrel
import PetrelFuzz

@main
struct FuzzCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "petrel-fuzz",
        abstract: "Fuzz the balancer in the kernel: random and mutated packets, every verdict, output byte and counter checked against a model.",
        discussion: """
        Needs root (BPF_PROG_TEST_RUN). Exit status 0 when every invariant held, 1 when any failed (each failure is printed with the seed that reproduces it).

        Examples:
          swift run -c release petrel-fuzz --packets 10000000
          petrel-fuzz --packets 200000 --seed 42
        """,
        version: PetrelVersion.string,
        subcommands: [Fuzz.self, ApplyForever.self],
        defaultSubcommand: Fuzz.self
    )

    struct Fuzz: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run", abstract: "Fuzz (the default).")

        @Option(help: "How many packets, at least 1.") var packets = 10_000_000
        @Option(help: "The seed of the packet generator (default: the time).") var seed = UInt64(Date().timeIntervalSince1970)
        @Option(help: "Switch the configuration every N packets (VIPs and reals added and removed, a flag changed), the model with it; 0: never.")
        var applyEvery = 100_000

        func validate() throws {
            guard packets >= 1 else { throw ValidationError("--packets: must be at least 1, got \(packets)") }
            guard applyEvery >= 0 else { throw ValidationError("--apply-every: must be 0 or more, got \(applyEvery)") }
        }

        func run() throws {
            let fuzzer = try PacketFuzzer(seed: seed, applyEvery: applyEvery)
            FileHandle.standardError.write(Data("fuzzing \(packets) packets, seed \(seed), apply every \(applyEvery)\n".utf8))
            let report = try fuzzer.run(packets: packets) { done in
                FileHandle.standardError.write(Data("  \(done) packets\n".utf8))
            }
            print("packets: \(report.packets) in \(String(format: "%.1f", report.seconds)) s, seed \(seed), "
                  + "\(report.applies) configuration switches (--apply-every \(applyEvery))")
            print("by kind: " + report.packetsByKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            print("outcomes: " + report.kernel.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.name) \($0.value)" }.joined(separator: ", "))
            for failure in report.failures { print("FAILURE \(failure)") }
            print(report.failures.isEmpty ? "fuzz: all invariants held" : "fuzz: \(report.failures.count) failures")
            if !report.failures.isEmpty { throw ExitCode.failure }
        }
    }

    /// The victim process of the kill-during-apply test: applies random configs until killed.
    struct ApplyForever: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "apply-forever", abstract: "Apply random configurations to the maps pinned at PIN_PATH until killed (a test's victim).",
            shouldDisplay: false)
        @Argument(help: "The pin directory on bpffs.") var pinPath: String

        func run() throws {
            try ApplyFaults.applyForever(pinPath: pinPath)
        }
    }
}
