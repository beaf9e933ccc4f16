import Petrel
import PetrelBPF
import PetrelTestSupport

/// Cost per packet of the loaded balancer, with its real maps, measured with
/// BPF_PROG_TEST_RUN and a large repeat count, next to the do-nothing XDP_TX
/// baseline on the same packet.
///
/// A forwarded packet is rewritten in place, and the kernel runs every
/// repetition on the same buffer: such packets go through the restore wrapper,
/// whose own cost (measured in front of the baseline, on the same packet) is
/// subtracted. Every measured run must move the balancer's counters by exactly
/// the repeat count, or its scenario is marked invalid.
struct PacketCostBench {
    let balancer: LoadBalancer
    let baseline: BPFProgram
    let wrapper: RestoreWrapper
    let repetitions: Int
    let rounds: Int
    let cpu: Int

    /// The scenario whose wrapper overhead the report quotes.
    static let referenceScenario = "ipv4_tcp_conn_hit"

    static let clock = "thread CPU time around the BPF_PROG_TEST_RUN call, divided by the repeat count; the lowest of the rounds"

    /// One BPF_PROG_TEST_RUN call.
    struct Measurement {
        /// The calling thread's CPU time per repetition (sub-nanosecond resolution).
        let ns: Double
        /// The kernel's own figure (whole ns, truncated).
        let kernelNs: Double
        let action: XDPAction
        let output: [UInt8]
    }

    func measure(_ program: BPFProgram, _ packet: [UInt8]) throws -> Measurement {
        let start = Host.threadCPUTime()
        let run = try program.testRun(packet: packet, repetitions: UInt32(repetitions))
        let end = Host.threadCPUTime()
        return Measurement(ns: Double(end - start) / Double(repetitions), kernelNs: Double(run.nanosecondsPerRun),
                           action: XDPAction(rawValue: run.returnValue) ?? .aborted, output: run.packet)
    }

    // MARK: Running

    func run(_ scenarios: [PacketScenario]) throws -> (PacketCostSection, [ScenarioResult]) {
        try ThreadAffinity.pin(toCPU: cpu)
        defer { ThreadAffinity.unpin() }

        var section = PacketCostSection(repetitions: repetitions, rounds: rounds, cpu: cpu, clock: PacketCostBench.clock)
        // The push program re-encapsulates IPv4 packets only.
        if let reference = scenarios.first(where: { $0.name == PacketCostBench.referenceScenario }) {
            section.restoreEstimateNs = try restoreEstimate(reference.packet)
        }

        var results: [ScenarioResult] = []
        for scenario in scenarios {
            Progress.say("packet cost: \(scenario.name)")
            let (result, check) = try measure(scenario)
            if !result.valid { Progress.warn("\(scenario.name) is INVALID: \(result.problems.joined(separator: "; "))") }
            if scenario.name == PacketCostBench.referenceScenario { section.wrapperOverheadNs = result.wrapperOverheadNs }
            if let check { section.subtractionCheck = check }
            results.append(result)
        }
        return (section, results)
    }

    private func measure(_ scenario: PacketScenario) throws -> (ScenarioResult, SubtractionCheck?) {
        let problems = ProblemLog()
        if let threshold = scenario.synFloodThreshold {
            var flooded = BenchPlan.forwarding
            flooded.synFloodThreshold = threshold
            try balancer.configureForwarding(flooded)
        }
        defer { if scenario.synFloodThreshold != nil { try? balancer.configureForwarding(BenchPlan.forwarding) } }
        // A capture with a reader draining its ring, as petreld runs one.
        var captureSlot: Int?
        var captureReader: BPFRingBufferReader?
        if let filter = scenario.capture {
            captureSlot = try balancer.startCapture(filter)
            if captureSlot == nil { problems.add("no free capture slot") }
            captureReader = try balancer.captures.reader(threadName: "bench.capture") { _ in }
        }
        defer {
            captureReader?.stop()
            if let captureSlot { try? balancer.captures.stop(captureSlot) }
        }
        if let primer = scenario.primer {
            // The first packet puts the flow in the shared table; the second teaches
            // this CPU's own table, where the measured packets then hit.
            for packet in [primer, scenario.packet] {
                let primed = try balancer.program.testRun(packet: packet)
                if primed.returnValue != XDPAction.tx.rawValue { problems.add("primer returned \(primed.returnValue), not XDP_TX") }
            }
        }

        var baselines: [Double] = [], overheads: [Double] = [], subjects: [Double] = [], wrappedDirect: [Double] = []
        var kernelBaselines: [Double] = [], kernelOverheads: [Double] = [], kernelSubjects: [Double] = []
        for round in 0..<rounds {
            let base = try measure(baseline, scenario.packet)
            baselines.append(base.ns)
            kernelBaselines.append(base.kernelNs)
            if base.action != .tx { problems.add("round \(round): baseline returned \(base.action)") }

            // The wrapper's own cost on this packet, in front of the baseline
            // (which does not change the packet, so nothing is restored).
            try wrapper.target(baseline)
            let overhead = try throughWrapper(scenario.packet, expectRestores: false, problems: problems, round: round)
            overheads.append(overhead.ns)
            kernelOverheads.append(overhead.kernelNs)

            if scenario.modifiesPacket {
                try wrapper.target(balancer.program)
                let subject = try withCounterProof(scenario, round: round, problems: problems, captureSlot: captureSlot) {
                    try throughWrapper(scenario.packet, expectRestores: true, problems: problems, round: round)
                }
                subjects.append(subject.ns)
                kernelSubjects.append(subject.kernelNs)
                checkEncapsulated(subject.output, from: scenario.packet, round: round, problems: problems)
                if let flow = scenario.remembered { try checkRemembered(flow, output: subject.output, round: round, problems: problems) }
            } else {
                let subject = try withCounterProof(scenario, round: round, problems: problems, captureSlot: captureSlot) {
                    try measure(balancer.program, scenario.packet)
                }
                subjects.append(subject.ns)
                kernelSubjects.append(subject.kernelNs)
                // The same packet through the wrapper checks the subtraction.
                try wrapper.target(balancer.program)
                let wrapped = try withCounterProof(scenario, round: round, problems: problems, captureSlot: captureSlot) {
                    try throughWrapper(scenario.packet, expectRestores: false, problems: problems, round: round)
                }
                wrappedDirect.append(wrapped.ns - (overhead.ns - base.ns))
            }
        }

        // Per round: Petrel's cost, with the wrapper overhead measured in the same round subtracted.
        let perRound = subjects.indices.map { i in scenario.modifiesPacket ? subjects[i] - (overheads[i] - baselines[i]) : subjects[i] }
        let kernelPerRound = kernelSubjects.indices.map { i in
            scenario.modifiesPacket ? kernelSubjects[i] - (kernelOverheads[i] - kernelBaselines[i]) : kernelSubjects[i]
        }
        // Noise on a shared machine only ever adds time: the lowest round is the figure.
        let ns = perRound.min(), b = baselines.min()
        let result = ScenarioResult(
            name: scenario.name, description: scenario.description, packetSize: scenario.packet.count,
            method: scenario.modifiesPacket ? "restore_wrapper" : "direct",
            nsPerPacket: rounded(ns), baselineNsPerPacket: rounded(b),
            ratioToBaseline: rounded(ns.flatMap { ns in b.map { ns / $0 } }, 3),
            mpps: rounded(ns.map { 1000 / $0 }, 3),
            medianNsPerPacket: rounded(perRound.median), medianBaselineNsPerPacket: rounded(baselines.median),
            roundsNsPerPacket: perRound.compactMap { rounded($0) },
            rawNsPerPacket: scenario.modifiesPacket ? rounded(subjects.min()) : nil,
            wrapperOverheadNs: scenario.modifiesPacket ? rounded(zip(overheads, baselines).map { $0 - $1 }.median, 3) : nil,
            kernelNsPerPacket: rounded(kernelPerRound.min()), kernelBaselineNsPerPacket: rounded(kernelBaselines.min()),
            repetitions: repetitions, expectedCounters: scenario.expectedCounters.map(\.name),
            expectedAction: scenario.expectedAction.description, valid: problems.isEmpty && ns != nil, problems: problems.list)
        var check: SubtractionCheck?
        if !scenario.modifiesPacket, scenario.expectedAction == .pass, let direct = subjects.min(), let wrapped = wrappedDirect.min() {
            check = SubtractionCheck(directNs: rounded(direct)!, throughWrapperNs: rounded(wrapped)!)
        }
        return (result, check)
    }

    // MARK: Proof that every repetition did the work

    /// Runs `body` and checks that each expected counter of the balancer grew
    /// by exactly the repeat count, and the verdict was the expected one.
    /// With `captureSlot`, the capture's counters are checked too (`PacketScenario.capture`).
    private func withCounterProof(_ scenario: PacketScenario, round: Int, problems: ProblemLog, captureSlot: Int? = nil,
                                  _ body: () throws -> Measurement) throws -> Measurement {
        let slot = captureSlot
        let capturedBefore = try slot.map { try balancer.captures.counts($0) }
        let before = try balancer.stats()
        let measurement = try body()
        let after = try balancer.stats()
        if let slot, let capturedBefore {
            let capturedAfter = try balancer.captures.counts(slot)
            let matched = capturedAfter.matched &- capturedBefore.matched
            let taken = (capturedAfter.recorded &- capturedBefore.recorded) &+ (capturedAfter.lost &- capturedBefore.lost)
            let expected = scenario.captureSelects ? UInt64(repetitions) : 0
            if matched != expected || taken != expected {
                problems.add("round \(round): capture matched \(matched) and recorded or lost \(taken), expected \(expected)")
            }
        }
        for reason in scenario.expectedCounters {
            let grew = after[reason] &- before[reason]
            // The guard's one-second window may restart during a run: its first SYN
            // is written (threshold 1), so one or two SYNs a run are not flood events.
            let slack: UInt64 = reason == .eventSynFlood ? 2 : 0
            if grew > UInt64(repetitions) || UInt64(repetitions) - grew > slack {
                problems.add("round \(round): \(reason.name) grew by \(grew), expected \(repetitions)")
            }
        }
        // Every VIP lookup but a run's first is answered by the VIP cache (step 7 in bench/README.md).
        let vipCacheMisses = after[.eventVipCacheMiss] &- before[.eventVipCacheMiss]
        if vipCacheMisses > 1 {
            problems.add("round \(round): event_vip_cache_miss grew by \(vipCacheMisses): the VIP cache did not answer the lookups")
        }
        if measurement.action != scenario.expectedAction {
            problems.add("round \(round): returned \(measurement.action), expected \(scenario.expectedAction)")
        }
        return measurement
    }

    /// Runs the wrapper (in front of whatever it targets) and checks its own
    /// counters: with `expectRestores`, every run but the first undid an encapsulation.
    private func throughWrapper(_ packet: [UInt8], expectRestores: Bool, problems: ProblemLog, round: Int) throws -> Measurement {
        let before = try wrapper.counters()
        let measurement = try measure(wrapper.program, packet)
        let after = try wrapper.counters()
        func grew(_ counter: RestoreWrapper.Counter) -> UInt64 { (after[counter] ?? 0) &- (before[counter] ?? 0) }
        let n = UInt64(repetitions)
        let restored = grew(.restoredV4Outer) + grew(.restoredV6Outer)
        let expectedRestored = expectRestores ? n - 1 : 0
        if restored != expectedRestored || grew(.untouched) != n - expectedRestored {
            problems.add("round \(round): the wrapper restored \(restored) packets and left \(grew(.untouched)), expected \(expectedRestored) and \(n - expectedRestored)")
        }
        if grew(.restoreFailed) != 0 { problems.add("round \(round): \(grew(.restoreFailed)) restores failed") }
        if grew(.tailCallFailed) != 0 { problems.add("round \(round): \(grew(.tailCallFailed)) tail calls failed") }
        return measurement
    }

    /// The shared table names the real the output went to (its outer destination).
    private func checkRemembered(_ flow: Flow, output: [UInt8], round: Int, problems: ProblemLog) throws {
        let etherType = output.count >= 14 ? UInt16(output[12]) << 8 | UInt16(output[13]) : 0
        let real = etherType == 0x0800 && output.count >= 34 ? IPAddress(wireBytes: output[30..<34])
            : etherType == 0x86dd && output.count >= 54 ? IPAddress(wireBytes: output[38..<54]) : nil
        let remembered = try balancer.explain(flow).rememberedReal
        if real == nil || remembered != real {
            problems.add("round \(round): the shared table names \(remembered.map { "\($0)" } ?? "no real") for the flow, not the real it went to")
        }
    }

    /// The last repetition's output must be the input behind one outer header (IP-in-IP or GUE).
    private func checkEncapsulated(_ output: [UInt8], from input: [UInt8], round: Int, problems: ProblemLog) {
        let outerLength = output.count - input.count
        let etherType = output.count >= 14 ? UInt16(output[12]) << 8 | UInt16(output[13]) : 0
        let innerMatches = outerLength > 0 && Array(output[(14 + outerLength)...]) == Array(input[14...])
        // IP-in-IP, or GUE: outer IP, then UDP to the GUE port (8 more bytes).
        func gueAt(_ udp: Int) -> Bool { output.count >= udp + 4 && UInt16(output[udp + 2]) << 8 | UInt16(output[udp + 3]) == ForwardingSettings.defaultGUEPort }
        let outerIsOurs = (etherType == 0x0800 && outerLength == 20 && output[23] == 4)
            || (etherType == 0x86dd && outerLength == 40 && (output[20] == 41 || output[20] == 4))
            || (etherType == 0x0800 && outerLength == 28 && output[23] == 17 && gueAt(34))
            || (etherType == 0x86dd && outerLength == 48 && output[20] == 17 && gueAt(54))
        if !(innerMatches && outerIsOurs) {
            problems.add("round \(round): the last run's output is not the packet behind one outer header (\(output.count) bytes from \(input.count))")
        }
    }

    // MARK: The restore itself

    /// Prices one restore: the wrapper in front of a program that re-encapsulates
    /// every time (so it restores on every run) against the wrapper in front of
    /// the baseline. The difference is one restore plus one push, taken as two
    /// restores: the push writes a little more, so this errs on the high side.
    private func restoreEstimate(_ packet: [UInt8]) throws -> Double? {
        Progress.say("packet cost: pricing the restore wrapper")
        let problems = ProblemLog()
        var plain: [Double] = [], cycling: [Double] = []
        for round in 0..<rounds {
            try wrapper.target(baseline)
            plain.append(try throughWrapper(packet, expectRestores: false, problems: problems, round: round).ns)
            try wrapper.target(wrapper.pushProgram)
            cycling.append(try throughWrapper(packet, expectRestores: true, problems: problems, round: round).ns)
        }
        guard problems.isEmpty, let p = plain.min(), let c = cycling.min() else {
            Progress.warn("restore estimate not valid: \(problems.list.joined(separator: "; "))")
            return nil
        }
        return rounded((c - p) / 2, 3)
    }
}

/// Problems found while measuring; shared by reference so nested checks can add to it.
final class ProblemLog {
    private(set) var list: [String] = []
    var isEmpty: Bool { list.isEmpty }
    func add(_ problem: String) { list.append(problem) }
}
