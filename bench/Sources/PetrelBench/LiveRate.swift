import Foundation
import Glibc
import Petrel
import PetrelBPF
import PetrelBenchObjects
import PetrelTestSupport

/// Live packet rate: an in-kernel generator (bench/bpf/bench_generator.bpf.c run with
/// BPF_F_TEST_XDP_LIVE_FRAMES) transmits through one end of a veth pair whose
/// other end runs Petrel (or the baseline) in native XDP mode, with 1...N
/// receive queues. One generator thread per queue, pinned to its own CPU: veth
/// puts a frame on the receive queue of the CPU that sent it, and that CPU then
/// runs the receiving XDP program, so queue n is fed and served on CPU n.
///
/// Everything lives in a network namespace of its own, deleted at the end (and
/// on SIGINT/SIGTERM).
final class LiveRateBench {
    let balancer: LoadBalancer
    let windowSeconds: Double
    let warmup: Double
    let rounds: Int
    let flowsPerQueue: Int
    let batchSize: UInt32 = 64
    /// Frames per BPF_PROG_RUN call: short enough to stop promptly.
    let chunk: UInt32 = 50_000
    let namespace = "petrelbench-\(getpid())"

    private let generator: BPFObject
    private let generatorProgram: BPFProgram
    private let generatorConfig: BPFMap
    private let generatorSent: BPFMap

    static let generatorInterface = "gen0"
    static let balancerInterface = "lb0"
    static let baselineProgramName = "petrel_baseline_tx"

    init(balancer: LoadBalancer, windowSeconds: Double, warmup: Double, rounds: Int, flowsPerQueue: Int) throws {
        self.balancer = balancer
        self.windowSeconds = windowSeconds
        self.warmup = warmup
        self.rounds = rounds
        self.flowsPerQueue = flowsPerQueue
        generator = try BPFObject(name: "bench_generator", elf: EmbeddedBPFObject.benchGenerator.bytes)
        try generator.load()
        generatorProgram = try generator.program(named: "petrel_bench_generator")
        generatorConfig = try generator.map(named: "generator_config")
        generatorSent = try generator.map(named: "generator_sent")
    }

    /// The frame every generated packet starts from: an IPv4 TCP ACK to the web VIP.
    static func template(destinationMAC: [UInt8], sourceMAC: [UInt8]) -> [UInt8] {
        let frame = BenchPlan.frame(.tcp, from: IPAddress("10.0.0.0")!, port: 40000, to: BenchPlan.web4.address, port: 80)
        return destinationMAC + sourceMAC + Array(frame[12...])
    }

    // MARK: Running

    func run(queueCounts: [Int]) throws -> [QueueResult] {
        LiveRateBench.removeStaleNamespaces()
        try Host.run(["ip", "netns", "add", namespace])
        CleanupOnSignal.shared.register(namespace)
        defer {
            _ = try? Host.run(["ip", "netns", "delete", namespace], allowFailure: true)
            CleanupOnSignal.shared.unregister(namespace)
        }
        try Host.run(["ip", "-n", namespace, "link", "set", "lo", "up"])
        // No IPv6 on the veth: its neighbour discovery would reach Petrel as stray packets.
        try Host.run(["ip", "netns", "exec", namespace, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"])

        try holdGeneratorInDispatcher()

        var results: [QueueResult] = []
        for queues in queueCounts {
            results.append(try measure(queues: queues))
        }
        if let one = results.first(where: { $0.queues == 1 }) {
            for i in results.indices {
                results[i].scaling = rounded(ratio(results[i].mpps, one.mpps), 3)
                results[i].baselineScaling = rounded(ratio(results[i].baselineMpps, one.baselineMpps), 3)
            }
        }
        return results
    }

    /// Every BPF_PROG_RUN of an XDP program adds it to the kernel's XDP
    /// dispatcher and removes it again, each time waiting for an RCU grace
    /// period (about 10 ms here when the other CPU is idle): 20 ms lost per call.
    /// While the program is attached somewhere it stays in the dispatcher and
    /// the calls skip that, so it is attached (generic mode) to the namespace's
    /// idle loopback (deleted with the namespace).
    private func holdGeneratorInDispatcher() throws {
        try NetworkNamespace.run(namespace) {
            try generatorProgram.attachXDPDirectly(toInterfaceIndex: try NetworkInterface(named: "lo").index, mode: .generic)
        }
    }

    private func ratio(_ a: Double?, _ b: Double?) -> Double? {
        guard let a, let b, b > 0 else { return nil }
        return a / b
    }

    private func measure(queues: Int) throws -> QueueResult {
        Progress.say("live rate: \(queues) queue(s), \(rounds) round(s) of \(windowSeconds) s each for Petrel and the baseline")
        let gen = LiveRateBench.generatorInterface, lb = LiveRateBench.balancerInterface
        try Host.run(["ip", "-n", namespace, "link", "add", gen, "numtxqueues", "\(queues)", "numrxqueues", "\(queues)",
                      "type", "veth", "peer", "name", lb, "numtxqueues", "\(queues)", "numrxqueues", "\(queues)"])
        defer { _ = try? Host.run(["ip", "-n", namespace, "link", "delete", gen], allowFailure: true) }
        try Host.run(["ip", "-n", namespace, "link", "set", gen, "up"])
        try Host.run(["ip", "-n", namespace, "link", "set", lb, "up"])

        let generatorIndex: UInt32 = try NetworkNamespace.run(namespace) {
            let generatorSide = try NetworkInterface(named: gen)
            let balancerSide = try NetworkInterface(named: lb)
            try configureGenerator(destinationMAC: try balancerSide.macAddress(), sourceMAC: try generatorSide.macAddress())
            return generatorSide.index
        }

        let problems = ProblemLog()
        var petrel: [Double] = [], petrelInterface: [Double] = [], baseline: [Double] = []
        var offered: [Double] = [], baselineOffered: [Double] = []
        for round in 0..<rounds {
            // Petrel.
            try NetworkNamespace.run(namespace) { try balancer.attach(interface: lb, mode: .native) }
            let before = try balancer.stats()
            let p = try timedWindow(queues: queues, generatorIndex: generatorIndex) { try self.balancer.stats()[.rx] }
            usleep(100_000)  // let the last frames already queued on the veth be processed
            let after = try balancer.stats()
            try NetworkNamespace.run(namespace) { try balancer.detach(interface: lb) }
            petrel.append(p.counted)
            petrelInterface.append(p.interfaceCounted)
            offered.append(p.offered)
            let rx = after[.rx] &- before[.rx], forwarded = after[.forward] &- before[.forward]
            if rx == 0 { problems.add("round \(round): Petrel received nothing") }
            if forwarded != rx { problems.add("round \(round): Petrel forwarded \(forwarded) of \(rx) packets") }
            if let error = p.error { problems.add("round \(round): generator: \(error)") }

            // The baseline, attached the same way.
            let object = try BPFObject(name: LiveRateBench.baselineProgramName, elf: EmbeddedBPFObject.xdpTxBaseline.bytes)
            try NetworkNamespace.run(namespace) {
                try XDPAttachment.attach(object: object, program: LiveRateBench.baselineProgramName, to: try NetworkInterface(named: lb), mode: .native)
            }
            let b = try timedWindow(queues: queues, generatorIndex: generatorIndex, counter: nil)
            _ = try NetworkNamespace.run(namespace) {
                try XDPAttachment.detach(program: LiveRateBench.baselineProgramName, from: try NetworkInterface(named: lb))
            }
            baseline.append(b.interfaceCounted)
            baselineOffered.append(b.offered)
            if b.interfaceCounted == 0 { problems.add("round \(round): the baseline received nothing") }
            if let error = b.error { problems.add("round \(round): generator: \(error)") }
        }
        for problem in problems.list { Progress.warn("live rate, \(queues) queue(s): \(problem)") }
        var extra: Double?
        if let p = petrel.median, let b = baseline.median, p > 0, b > 0 { extra = Double(queues) * (1000 / p - 1000 / b) }
        return QueueResult(
            queues: queues, mpps: rounded(petrel.median, 3), baselineMpps: rounded(baseline.median, 3),
            interfaceMpps: rounded(petrelInterface.median, 3), scaling: nil, baselineScaling: nil, extraNsPerPacket: rounded(extra, 1),
            offeredMpps: rounded(offered.median, 3), baselineOfferedMpps: rounded(baselineOffered.median, 3),
            flows: queues * flowsPerQueue, valid: problems.isEmpty, problems: problems.list)
    }

    private func configureGenerator(destinationMAC: [UInt8], sourceMAC: [UInt8]) throws {
        let frame = LiveRateBench.template(destinationMAC: destinationMAC, sourceMAC: sourceMAC)
        precondition(frame.count == 64, "the generator writes 64-byte frames")
        // struct bench_generator_config: the frame, flows per CPU, first source address.
        var config = InlineArray<72, UInt8>(repeating: 0)
        for (i, byte) in frame.enumerated() { config[i] = byte }
        withUnsafeBytes(of: UInt32(flowsPerQueue)) { for (i, byte) in $0.enumerated() { config[64 + i] = byte } }
        withUnsafeBytes(of: UInt32(0x0a00_0000)) { for (i, byte) in $0.enumerated() { config[68 + i] = byte } }
        try generatorConfig.update(UInt32(0), config)
    }

    // MARK: One timed window

    struct Window {
        /// Packets per second (millions) by the given counter, and by the receiving interface's rx counter.
        var counted: Double
        var interfaceCounted: Double
        /// Frames the generators wrote per second (millions), by the generator's own counter.
        var offered: Double
        var error: String?
    }

    /// Starts one pinned generator thread per queue, lets them warm up, then
    /// reads the counters at both ends of a window of `windowSeconds`.
    private func timedWindow(queues: Int, generatorIndex: UInt32, counter: (() throws -> UInt64)?) throws -> Window {
        // The generator writes every frame from its configured template: only the length of this one matters.
        let template = LiveRateBench.template(destinationMAC: [0, 0, 0, 0, 0, 0], sourceMAC: [0, 0, 0, 0, 0, 0])
        let state = GeneratorState()
        let group = DispatchGroup()
        for cpu in 0..<queues {
            group.enter()
            let thread = Thread { [generatorProgram, namespace, chunk, batchSize] in
                defer { group.leave() }
                do {
                    try NetworkNamespace.run(namespace) {
                        try ThreadAffinity.pin(toCPU: cpu)
                        while !state.stopped {
                            _ = try generatorProgram.transmitLiveFrames(packet: template, interfaceIndex: generatorIndex,
                                                                        repetitions: chunk, batchSize: batchSize)
                        }
                    }
                } catch {
                    state.fail("\(error)")
                }
            }
            thread.name = "generator-\(cpu)"
            thread.start()
        }
        defer {
            state.stop()
            group.wait()
        }

        usleep(UInt32(warmup * 1e6))
        let start = try snapshot(counter)
        usleep(UInt32(windowSeconds * 1e6))
        let end = try snapshot(counter)
        let seconds = Double(end.time - start.time) / 1e9
        func rate(_ a: UInt64, _ b: UInt64) -> Double { Double(b &- a) / seconds / 1e6 }
        return Window(counted: rate(start.counter, end.counter), interfaceCounted: rate(start.interface, end.interface),
                      offered: rate(start.sent, end.sent), error: state.error)
    }

    private struct Snapshot {
        var time: UInt64, counter: UInt64, interface: UInt64, sent: UInt64
    }

    /// Reads the counters, timed at the middle of the reads.
    private func snapshot(_ counter: (() throws -> UInt64)?) throws -> Snapshot {
        let before = Host.now()
        let value = try counter?() ?? 0
        let interface = try receivedPackets(LiveRateBench.balancerInterface)
        let sent = try generatorSent.lookupPerCPU(UInt32(0), as: UInt64.self).reduce(0, +)
        let after = Host.now()
        return Snapshot(time: (before + after) / 2, counter: value, interface: interface, sent: sent)
    }

    /// The interface's received-packet counter (veth counts every frame its XDP program saw).
    private func receivedPackets(_ interface: String) throws -> UInt64 {
        try NetworkNamespace.run(namespace) {
            let table = try String(contentsOfFile: "/proc/thread-self/net/dev", encoding: .utf8)
            for line in table.split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == interface else { continue }
                let fields = parts[1].split(separator: " ", omittingEmptySubsequences: true)
                // Receive: bytes packets errs drop ...
                if fields.count > 1, let packets = UInt64(fields[1]) { return packets }
            }
            throw HostError("no line for \(interface) in /proc/net/dev of namespace \(namespace)")
        }
    }

    // MARK: Clean-up

    /// Deletes namespaces left by earlier runs that were killed.
    static func removeStaleNamespaces() {
        guard let list = try? Host.run(["ip", "netns", "list"], allowFailure: true) else { return }
        for line in list.split(separator: "\n") {
            let name = String(line.split(separator: " ").first ?? "")
            guard name.hasPrefix("petrelbench-"), let pid = Int32(name.dropFirst("petrelbench-".count)) else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                _ = try? Host.run(["ip", "netns", "delete", name], allowFailure: true)
            }
        }
    }
}

/// What the generator threads share with the thread that times them.
/// `@unchecked Sendable`: its state is touched only under `lock`.
final class GeneratorState: @unchecked Sendable {
    private let lock = NSLock()
    private var isStopped = false
    private var firstError: String?

    var stopped: Bool { lock.withLock { isStopped } }
    var error: String? { lock.withLock { firstError } }

    func stop() { lock.withLock { isStopped = true } }
    func fail(_ message: String) {
        lock.withLock {
            if firstError == nil { firstError = message }
            isStopped = true
        }
    }
}

/// Deletes the benchmark's namespaces if the run is interrupted.
/// `@unchecked Sendable`: its state is touched only under `lock`.
final class CleanupOnSignal: @unchecked Sendable {
    static let shared = CleanupOnSignal()
    private let lock = NSLock()
    private var namespaces: Set<String> = []
    private var sources: [DispatchSourceSignal] = []

    private init() {
        for number in [SIGINT, SIGTERM, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [weak self] in
                self?.deleteAll()
                exit(128 + number)
            }
            source.resume()
            sources.append(source)
        }
    }

    func register(_ namespace: String) { lock.withLock { _ = namespaces.insert(namespace) } }
    func unregister(_ namespace: String) { lock.withLock { _ = namespaces.remove(namespace) } }

    private func deleteAll() {
        let names = lock.withLock { namespaces }
        for name in names {
            Progress.say("interrupted: deleting network namespace \(name)")
            _ = try? Host.run(["ip", "netns", "delete", name], allowFailure: true)
        }
    }
}
