import ArgumentParser
import Foundation
import Glibc
import Petrel
import PetrelBPF
import PetrelBenchObjects
import PetrelTestSupport

@main
struct PetrelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "petrel-bench",
        abstract: "Measure Petrel: cost per packet, live packet rate per receive queue, control-plane times.",
        discussion: """
            `petrel-bench` runs everything (a few minutes); `petrel-bench --quick` a short version \
            (under a minute). Needs root (BPF, network namespaces). Writes latest.json, latest.md and latest.png to the \
            output directory; a full run also keeps dated copies. Progress goes to standard error. \
            See bench/README.md for what each figure means.
            """,
        version: PetrelVersion.string,
        subcommands: [RunBenchmarks.self, ApplyConfig.self, ProfileScenario.self, AttributeSamples.self],
        defaultSubcommand: RunBenchmarks.self)
}

// MARK: - The benchmark run

struct RunBenchmarks: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the benchmarks (the default).")

    @Flag(help: "A short run (under a minute): fewer repetitions, short windows, smaller control-plane configs.")
    var quick = false

    @Option(help: "Where to write the results (default: bench/results of the package).")
    var outputDirectory: String?

    @Option(help: "CPU that runs the BPF_PROG_TEST_RUN measurements (default: the last one).")
    var cpu: Int?

    @Option(help: "Largest receive-queue count for the live rate (default: the number of CPUs).")
    var maxQueues: Int?

    @Flag(help: "Skip the cost-per-packet measurements.")
    var skipPacketCost = false

    @Flag(help: "Skip the live packet rate.")
    var skipLive = false

    @Flag(help: "Skip the control-plane measurements.")
    var skipControlPlane = false

    @Flag(help: "Do not draw latest.png.")
    var noPlot = false

    @Option(help: "Turn the flow log on, logging 1 decision in N, with a reader draining it (default: off, as with nobody following).")
    var flowLogSample: UInt32 = 0

    func validate() throws {
        if let cpu, !(0..<Host.onlineCPUs).contains(cpu) {
            throw ValidationError("--cpu \(cpu): must be between 0 and \(Host.onlineCPUs - 1)")
        }
        if let maxQueues, maxQueues < 1 {
            throw ValidationError("--max-queues \(maxQueues): must be at least 1")
        }
    }

    func run() throws {
        guard geteuid() == 0 else {
            throw ValidationError("petrel-bench needs root: it loads BPF programs and creates network namespaces")
        }
        let settings = quick ? BenchSettings.quick : BenchSettings.full
        let root = PackageRoot.locate()
        let output = outputDirectory.map { URL(fileURLWithPath: $0) } ?? root.appendingPathComponent("bench/results")
        Progress.say("petrel-bench, \(quick ? "quick" : "full") mode; results to \(output.path)")

        var warnings: [String] = []
        func record(_ section: String, _ error: Error) {
            let message = "\(section) failed: \(error)"
            Progress.warn(message)
            warnings.append(message)
        }

        // The data plane: the real balancer with the benchmark VIPs.
        let balancer = try LoadBalancer(limits: BenchPlan.limits)
        let forwarding = BenchPlan.forwarding
        try balancer.configureForwarding(forwarding)
        try balancer.apply(BenchPlan.vips)
        // The flow log's cost when someone follows: records are read as petreld would.
        let flowLogReader = flowLogSample == 0 ? nil : try balancer.readFlowLog { _ in }
        defer { flowLogReader?.stop() }
        if flowLogSample > 0 {
            try balancer.setFlowLog(sampleEvery: flowLogSample)
            Progress.say("flow log on: 1 decision in \(flowLogSample) logged")
        }

        var packetCost = PacketCostSection(repetitions: settings.repetitions, rounds: settings.rounds,
                                           cpu: cpu ?? Host.onlineCPUs - 1, clock: PacketCostBench.clock)
        var scenarios: [ScenarioResult] = []
        if !skipPacketCost {
            do {
                let baselineObject = try BPFObject(name: "petrel_baseline_tx", elf: EmbeddedBPFObject.xdpTxBaseline.bytes)
                try baselineObject.load()
                let bench = PacketCostBench(
                    balancer: balancer, baseline: try baselineObject.program(named: "petrel_baseline_tx"),
                    wrapper: try RestoreWrapper(settings: forwarding, originalDestinationMAC: BenchPlan.balancerMAC,
                                                originalSourceMAC: BenchPlan.clientMAC),
                    repetitions: settings.repetitions, rounds: settings.rounds, cpu: packetCost.cpu)
                (packetCost, scenarios) = try bench.run(BenchPlan.scenarios)
                warnings += scenarios.filter { !$0.valid }.map { "scenario \($0.name) invalid: \($0.problems.joined(separator: "; "))" }
            } catch {
                record("cost per packet", error)
            }
        }

        let queueCounts = Array(1...min(maxQueues ?? Host.onlineCPUs, Host.onlineCPUs))
        var live = LiveSection(ran: false, reason: skipLive ? "--skip-live" : nil, windowSeconds: settings.liveWindow,
                               rounds: settings.liveRounds, flowsPerQueue: settings.flowsPerQueue, generatorBatchSize: 64, queues: [])
        if !skipLive {
            do {
                let bench = try LiveRateBench(balancer: balancer, windowSeconds: settings.liveWindow, warmup: settings.liveWarmup,
                                              rounds: settings.liveRounds, flowsPerQueue: settings.flowsPerQueue)
                live.queues = try bench.run(queueCounts: queueCounts)
                live.ran = true
                warnings += live.queues.filter { !$0.valid }.map { "live rate with \($0.queues) queue(s) invalid: \($0.problems.joined(separator: "; "))" }
            } catch {
                live.reason = "\(error)"
                record("live packet rate", error)
            }
        }

        var controlPlane: [String: ControlPlaneFigure] = [:]
        if !skipControlPlane {
            do {
                controlPlane.merge(try ControlPlaneBench.maglev(realCounts: [10, 100, 1000], size: 65537, repeats: settings.maglevRepeats)) { $1 }
                for config in settings.configs {
                    let figures = try ControlPlaneBench.applyInChild(vips: config.vips, realsPerVip: 100, ringSize: config.ringSize, reloads: settings.reloads)
                    controlPlane.merge(ControlPlaneBench.figures(figures)) { $1 }
                }
            } catch {
                record("control plane", error)
            }
        }

        let machine = Host.machineInfo(packetSize: BenchPlan.scenarios[0].packet.count,
                                       flows: (queueCounts.last ?? 1) * settings.flowsPerQueue,
                                       vips: BenchPlan.vips.count, reals: BenchPlan.realCount)
        var results = BenchResults(mode: quick ? "quick" : "full", machine: machine, packetCost: packetCost, scenarios: scenarios,
                                   live: live, controlPlane: controlPlane, targets: [], warnings: warnings)
        results.targets = Targets.check(results)

        let writer = ReportWriter(directory: output)
        let plotScript = root.appendingPathComponent("bench/plot.py")
        let script = noPlot || !FileManager.default.fileExists(atPath: plotScript.path) ? nil : plotScript
        var written = try writer.write(results, baseName: "latest", plotScript: script)
        if !quick {
            let day = String(machine.date.prefix(10))
            written += try writer.write(results, baseName: "\(day)-full", plotScript: script)
        }
        print(ReportWriter.markdown(results))
        Progress.say("wrote \(written.map(\.lastPathComponent).joined(separator: ", ")) to \(output.path)")
    }
}

/// How long and how hard each part runs.
struct BenchSettings {
    var repetitions: Int
    var rounds: Int
    var liveWindow: Double
    var liveWarmup: Double
    var liveRounds: Int
    var flowsPerQueue: Int
    var maglevRepeats: Int
    var configs: [(vips: Int, ringSize: Int)]
    var reloads: Int

    static let full = BenchSettings(
        repetitions: 2_000_000, rounds: 7, liveWindow: 3, liveWarmup: 0.5, liveRounds: 3, flowsPerQueue: 4096,
        maglevRepeats: 15, configs: [(1_000, 65537), (10_000, 1031)], reloads: 5)
    static let quick = BenchSettings(
        repetitions: 100_000, rounds: 3, liveWindow: 0.5, liveWarmup: 0.2, liveRounds: 1, flowsPerQueue: 256,
        maglevRepeats: 3, configs: [(1_000, 1031), (10_000, 1031)], reloads: 3)
}

/// The package's root directory: the current directory when it holds bench/,
/// else found from this source file's path.
enum PackageRoot {
    static func locate() -> URL {
        let current = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        if FileManager.default.fileExists(atPath: current.appendingPathComponent("bench/Sources/PetrelBench").path) { return current }
        // bench/Sources/PetrelBench/PetrelBench.swift
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }
}

// MARK: - One large configuration, in a child process

struct ApplyConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply-config",
        abstract: "Load a balancer, apply a large generated configuration, reload one change; print the figures as JSON.",
        shouldDisplay: false)

    @Option var vips: Int
    @Option var realsPerVip: Int
    @Option var ringSize: Int
    @Option var reloads: Int = 3

    func run() throws {
        let figures = try ControlPlaneBench.measureApply(vips: vips, realsPerVip: realsPerVip, ringSize: ringSize, reloads: reloads)
        let encoder = JSONEncoder()
        print(String(decoding: try encoder.encode(figures), as: UTF8.self))
    }
}

// MARK: - One scenario in a loop, for a profiler

struct ProfileScenario: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Run one packet scenario in a loop on one CPU, for `perf record -C <cpu>` (see bench/README.md).",
        shouldDisplay: false)

    @Argument(help: "Scenario name, e.g. ipv4_tcp_conn_hit.")
    var scenario: String

    @Option(help: "How long to run, in seconds.")
    var seconds: Double = 10

    @Option(help: "CPU to run on.")
    var cpu: Int = Host.onlineCPUs - 1

    @Option(help: "Write the balancer's line table in JIT code here, for `petrel-bench attribute`.")
    var lineMap: String?

    func run() throws {
        guard let chosen = BenchPlan.scenarios.first(where: { $0.name == scenario }) else {
            throw ValidationError("no scenario '\(scenario)'; one of: \(BenchPlan.scenarios.map(\.name).joined(separator: ", "))")
        }
        let balancer = try LoadBalancer(limits: BenchPlan.limits)
        let forwarding = BenchPlan.forwarding
        try balancer.configureForwarding(forwarding)
        try balancer.apply(BenchPlan.vips)
        if let threshold = chosen.synFloodThreshold {
            var flooded = forwarding
            flooded.synFloodThreshold = threshold
            try balancer.configureForwarding(flooded)
        }
        let wrapper = try RestoreWrapper(settings: forwarding, originalDestinationMAC: BenchPlan.balancerMAC, originalSourceMAC: BenchPlan.clientMAC)
        try wrapper.target(balancer.program)
        if let lineMap {
            let table = try balancer.program.jitedLines()
                .map { "\(String($0.address, radix: 16))\t\($0.file.split(separator: "/").last ?? ""):\($0.line)\t\($0.source)" }
            try (table.joined(separator: "\n") + "\n").write(toFile: lineMap, atomically: true, encoding: .utf8)
            Progress.say("wrote \(table.count) lines of the balancer's JIT line table to \(lineMap)")
        }
        try ThreadAffinity.pin(toCPU: cpu)
        if let primer = chosen.primer { _ = try balancer.program.testRun(packet: primer) }
        let program = chosen.modifiesPacket ? wrapper.program : balancer.program
        Progress.say("running \(chosen.name) on CPU \(cpu) for \(seconds) s (\(chosen.modifiesPacket ? "through the restore wrapper" : "directly"))")
        let deadline = Host.now() + UInt64(seconds * 1e9)
        var runs = 0
        while Host.now() < deadline {
            _ = try program.testRun(packet: chosen.packet, repetitions: 1_000_000)
            runs += 1
        }
        Progress.say("done: \(runs) million packets")
    }
}

// MARK: - Samples to source lines

struct AttributeSamples: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attribute",
        abstract: "Count the balancer's samples in `perf script -F ip,sym` (standard input) by source line (see bench/README.md).",
        shouldDisplay: false)

    @Option(help: "The line table `petrel-bench profile --line-map` wrote.")
    var lineMap: String

    @Option(help: "How many lines to print.")
    var top: Int = 30

    func run() throws {
        // Each row: the address where a source line's code starts, then "file:line" and the text.
        let rows = try String(contentsOfFile: lineMap, encoding: .utf8).split(separator: "\n").compactMap { row -> (UInt64, String)? in
            let fields = row.split(separator: "\t", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3, let address = UInt64(fields[0], radix: 16) else { return nil }
            return (address, "\(fields[1])  \(fields[2].trimmingCharacters(in: .whitespaces).prefix(70))")
        }.sorted { $0.0 < $1.0 }
        guard let first = rows.first?.0 else { throw ValidationError("\(lineMap) holds no line table") }
        var counts: [String: Int] = [:]
        var samples = 0
        while let line = readLine() {
            let fields = line.split(separator: " ")
            guard fields.count >= 2, fields[1].hasSuffix("_petrel_balancer"),
                  let address = UInt64(fields[0], radix: 16), address >= first else { continue }
            // The last line starting at or below the address holds it (binary search).
            var low = 0, high = rows.count
            while high - low > 1 {
                let middle = (low + high) / 2
                if rows[middle].0 <= address { low = middle } else { high = middle }
            }
            counts[rows[low].1, default: 0] += 1
            samples += 1
        }
        print("\(samples) samples in the balancer")
        for (source, count) in counts.sorted(by: { $0.value > $1.value }).prefix(top) {
            print(String(format: "%5.1f %%  ", 100 * Double(count) / Double(max(samples, 1))) + source)
        }
    }
}
