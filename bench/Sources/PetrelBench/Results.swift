import Foundation

// The figures one run of petrel-bench produces, as written to latest.json.
// Keys are snake_case in the JSON (see ReportWriter); bench/README.md explains each.

/// Everything one run measured.
struct BenchResults: Codable {
    var mode: String
    var machine: MachineInfo
    var packetCost: PacketCostSection
    var scenarios: [ScenarioResult]
    var live: LiveSection
    var controlPlane: [String: ControlPlaneFigure]
    var targets: [TargetCheck]
    var warnings: [String]
}

/// Where and when the figures were taken, and the traffic they were taken with.
struct MachineInfo: Codable {
    var kernel: String
    var cpuModel: String
    var cores: Int
    var date: String
    /// Frame size of the IPv4 TCP packets (test runs and live traffic), in bytes.
    var packetSize: Int
    /// Distinct flows the live generator sends (all queues together, largest queue count).
    var flows: Int
    /// VIPs and reals configured in the balancer for the data-plane measurements.
    var vips: Int
    var reals: Int
    var swiftVersion: String
}

// MARK: Cost per packet (BPF_PROG_TEST_RUN)

/// How the per-packet figures were taken, and what the restore wrapper costs.
struct PacketCostSection: Codable {
    var repetitions: Int
    var rounds: Int
    var cpu: Int
    /// Which clock the ns figures come from (see bench/README.md).
    var clock: String
    /// Restore wrapper plus tail call into a do-nothing program, minus that program alone.
    var wrapperOverheadNs: Double?
    /// One restore (bpf_xdp_adjust_head back and the Ethernet header rewritten), estimated;
    /// still included in the figures of the forwarding scenarios, which are therefore upper bounds.
    var restoreEstimateNs: Double?
    /// The non-VIP packet measured directly and through the wrapper with its overhead
    /// subtracted: the two should agree, which checks the subtraction.
    var subtractionCheck: SubtractionCheck?
}

struct SubtractionCheck: Codable {
    var directNs: Double
    var throughWrapperNs: Double
}

/// One packet scenario next to the do-nothing XDP_TX baseline on the same packet.
struct ScenarioResult: Codable {
    var name: String
    var description: String
    var packetSize: Int
    /// "direct" (the packet is not modified) or "restore_wrapper".
    var method: String
    /// Petrel's cost per packet, the lowest of the rounds; for the wrapper method,
    /// with the wrapper overhead measured in the same round subtracted.
    var nsPerPacket: Double?
    var baselineNsPerPacket: Double?
    var ratioToBaseline: Double?
    /// Packets per second one core could process at nsPerPacket, in millions.
    var mpps: Double?
    /// The middle of the rounds, and every round, to show the spread.
    var medianNsPerPacket: Double?
    var medianBaselineNsPerPacket: Double?
    var roundsNsPerPacket: [Double]
    /// The measured time through the wrapper before the subtraction (lowest round).
    var rawNsPerPacket: Double?
    /// The wrapper in front of the baseline, minus the baseline, on this packet (median of the rounds).
    var wrapperOverheadNs: Double?
    /// What the kernel itself reported (whole ns per run, truncated), for comparison.
    var kernelNsPerPacket: Double?
    var kernelBaselineNsPerPacket: Double?
    var repetitions: Int
    /// Counters that had to grow by exactly `repetitions` in every measured run.
    var expectedCounters: [String]
    var expectedAction: String
    /// True only if every run did the expected work on every iteration.
    var valid: Bool
    var problems: [String]
}

// MARK: Live packet rate

struct LiveSection: Codable {
    var ran: Bool
    var reason: String?
    var windowSeconds: Double
    var rounds: Int
    var flowsPerQueue: Int
    var generatorBatchSize: Int
    var queues: [QueueResult]
}

/// Petrel and the baseline, attached in native mode to a veth with `queues` receive queues.
struct QueueResult: Codable {
    var queues: Int
    /// Packets Petrel processed per second (its rx counter over the window), millions.
    var mpps: Double?
    /// Packets the baseline processed per second (the interface's rx counter), millions.
    var baselineMpps: Double?
    /// Petrel measured by the interface's rx counter, to compare with baselineMpps like for like.
    var interfaceMpps: Double?
    /// mpps divided by the one-queue mpps.
    var scaling: Double?
    var baselineScaling: Double?
    /// CPU time per packet Petrel costs beyond the baseline, from the two rates:
    /// queues × (1/mpps − 1/baseline_mpps). Comparable to the test-run figures.
    var extraNsPerPacket: Double?
    /// Frames the generators pushed per second (some may be dropped before Petrel).
    var offeredMpps: Double?
    var baselineOfferedMpps: Double?
    var flows: Int
    var valid: Bool
    var problems: [String]
}

// MARK: Control plane

struct ControlPlaneFigure: Codable {
    var value: Double
    var unit: String
    var detail: String
    /// Maglev slots per VIP the figure was taken with.
    var ringSize: Int?
}

// MARK: Targets

struct TargetCheck: Codable {
    var name: String
    var target: String
    var measured: String
    /// nil when the figure could not be measured.
    var met: Bool?
}
