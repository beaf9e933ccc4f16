import Foundation
import Petrel

/// Control-plane figures: building Maglev rings, applying large configurations
/// to a freshly loaded balancer, reloading one change, and the memory it takes.
///
/// Each configuration is applied in a child process of its own (`petrel-bench
/// apply-config`), so its peak resident set (VmHWM) is that configuration's
/// alone and not the high-water mark of everything measured before.
enum ControlPlaneBench {
    // MARK: Maglev

    /// Median time to build a ring of `size` slots for each number of reals.
    static func maglev(realCounts: [Int], size: Int, repeats: Int) throws -> [String: ControlPlaneFigure] {
        var figures: [String: ControlPlaneFigure] = [:]
        for count in realCounts {
            Progress.say("control plane: Maglev ring of \(size) slots for \(count) reals")
            let reals = realPool(count).map { Real(address: $0) }
            var times: [Double] = []
            for _ in 0..<repeats {
                let start = Host.now()
                let ring = try MaglevRing(reals: reals, size: size)
                times.append(Double(Host.now() - start) / 1e6)
                precondition(ring.slots.count == size)
            }
            figures["maglev_\(size)_\(count)_reals_ms"] = ControlPlaneFigure(
                value: rounded(times.median, 3)!, unit: "ms",
                detail: "MaglevRing(reals:size:) with \(count) reals of weight 1, \(size) slots; median of \(repeats) builds (min \(rounded(times.min(), 3)!) ms)",
                ringSize: size)
        }
        return figures
    }

    /// `count` distinct IPv4 real addresses, 10.1.0.1 upwards.
    static func realPool(_ count: Int) -> [IPAddress] {
        (0..<count).map { i in .v4(10, 1 + UInt8(i >> 16), UInt8((i >> 8) & 0xff), UInt8(i & 0xff)) }
    }

    // MARK: Large configurations

    /// One large configuration, as measured by a child process.
    struct ApplyFigures: Codable {
        var vips: Int
        var realsPerVip: Int
        var ringSize: Int
        var maxReals: Int
        var distinctReals: Int
        var distinctRings: Int
        var loadSeconds: Double
        var applySeconds: Double
        var ringSlotsChanged: Int
        var reloadSeconds: [Double]
        var reloadSlotsWritten: Int
        var peakRSSKilobytes: Int
        var ringMapBytes: Int
    }

    /// Reals in the shared pool the VIPs draw from (ids 1...4095 exist; one spare
    /// id is left for the reload's new real).
    static let poolSize = 4000

    /// VIP `i` of a large configuration: its own address, and `realsPerVip` reals
    /// from the pool starting at i mod pool with a stride of 1 + i / pool, so no
    /// two VIPs share a set of reals and every ring must be built.
    static func largeConfig(vips: Int, realsPerVip: Int) -> [Vip] {
        let pool = realPool(poolSize)
        return (0..<vips).map { i in
            let address = IPAddress.v4(100, 64 + UInt8(i >> 16), UInt8((i >> 8) & 0xff), UInt8(i & 0xff))
            let start = i % poolSize, stride = 1 + i / poolSize
            let reals = (0..<realsPerVip).map { Real(address: pool[(start + $0 * stride) % poolSize]) }
            return Vip(key: VipKey(address: address, port: 80, proto: .tcp), reals: reals)
        }
    }

    /// Runs in the child: loads a balancer sized for the configuration, applies it
    /// from scratch, then reloads with one real of one VIP replaced (and back).
    static func measureApply(vips: Int, realsPerVip: Int, ringSize: Int, reloads: Int) throws -> ApplyFigures {
        let maxReals = 4096
        let config = largeConfig(vips: vips, realsPerVip: realsPerVip)
        let distinctReals = Set(config.flatMap { $0.reals.map(\.address) }).count
        let distinctRings = Set(config.map { $0.reals.map(\.address).sorted() }).count

        var start = Host.now()
        let balancer = try LoadBalancer(limits: DataPlaneLimits(maxVips: vips, maxReals: maxReals, ringSize: ringSize, connectionTableSize: 4096))
        let loadSeconds = Double(Host.now() - start) / 1e9

        start = Host.now()
        let report = try balancer.apply(config)
        let applySeconds = Double(Host.now() - start) / 1e9

        // Replace one real of the first VIP by a real no VIP uses yet, then put it back.
        var changed = config
        changed[0].reals[0] = Real(address: .v4(10, 2, 0, 1))
        var reloadTimes: [Double] = []
        var reloadSlots = 0
        for n in 0..<reloads {
            start = Host.now()
            let reload = try balancer.apply(n % 2 == 0 ? changed : config)
            reloadTimes.append(Double(Host.now() - start) / 1e6)
            if n == 0 { reloadSlots = reload.ringSlotsChanged }
        }
        return ApplyFigures(
            vips: vips, realsPerVip: realsPerVip, ringSize: ringSize, maxReals: maxReals,
            distinctReals: distinctReals, distinctRings: distinctRings,
            loadSeconds: loadSeconds, applySeconds: applySeconds, ringSlotsChanged: report.ringSlotsChanged,
            reloadSeconds: reloadTimes.map { $0 / 1e3 }, reloadSlotsWritten: reloadSlots,
            peakRSSKilobytes: Host.statusKilobytes("VmHWM") ?? 0, ringMapBytes: 2 * vips * ringSize * 4)  // two rows per VIP
    }

    /// Runs `measureApply` in a child process of this executable.
    static func applyInChild(vips: Int, realsPerVip: Int, ringSize: Int, reloads: Int) throws -> ApplyFigures {
        Progress.say("control plane: applying \(vips) VIPs x \(realsPerVip) reals (ring \(ringSize)) in a child process")
        let output = try Host.run([
            CommandLine.selfExecutable, "apply-config", "--vips", "\(vips)", "--reals-per-vip", "\(realsPerVip)",
            "--ring-size", "\(ringSize)", "--reloads", "\(reloads)",
        ])
        return try JSONDecoder().decode(ApplyFigures.self, from: Data(output.utf8))
    }

    /// The figures of one configuration, by name.
    static func figures(_ f: ApplyFigures) -> [String: ControlPlaneFigure] {
        let name = "\(f.vips)_vips_\(f.realsPerVip)_reals"
        let shape = "\(f.vips) VIPs x \(f.realsPerVip) reals, ring size \(f.ringSize), \(f.distinctRings) distinct rings, \(f.distinctReals) distinct reals"
        let reload = f.reloadSeconds.map { $0 * 1000 }
        return [
            "apply_\(name)_s": ControlPlaneFigure(
                value: rounded(f.applySeconds, 3)!, unit: "s",
                detail: "LoadBalancer.apply from scratch (rings built and written, \(f.ringSlotsChanged) slots): \(shape)", ringSize: f.ringSize),
            "load_\(name)_s": ControlPlaneFigure(
                value: rounded(f.loadSeconds, 3)!, unit: "s",
                detail: "LoadBalancer(limits:) before the apply: object load, verifier, map creation (\(f.ringMapBytes / 1_048_576) MiB ring map)", ringSize: f.ringSize),
            "reload_one_real_\(name)_ms": ControlPlaneFigure(
                value: rounded(reload.median, 2)!, unit: "ms",
                detail: "apply with one real of one VIP replaced (\(f.reloadSlotsWritten) ring slots changed), median of \(reload.count): \(shape)", ringSize: f.ringSize),
            "peak_rss_\(name)_mib": ControlPlaneFigure(
                value: rounded(Double(f.peakRSSKilobytes) / 1024, 1)!, unit: "MiB",
                detail: "VmHWM of a process that loaded the balancer and applied this config; the ring map's \(f.ringMapBytes / 1_048_576) MiB are kernel memory, not counted here", ringSize: f.ringSize),
        ]
    }
}

extension CommandLine {
    /// This executable, to start a child of it.
    static var selfExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? arguments[0]
    }
}
