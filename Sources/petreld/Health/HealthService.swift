import Dispatch
import Foundation
import Logging
import Petrel
import PetrelAdmin
import PetrelHealth

/// petreld's health checks: the probe forwarder on the balancer's interface, the
/// monitor that probes every checked real through its VIP, and the link back to
/// the data plane. Probing runs on the monitor's own thread and this service's
/// queue; only the short apply of a state change runs on the control queue, in
/// the same plan as a reload (diff, one atomic ring switch per VIP, logged).
final class HealthService: @unchecked Sendable {
    private unowned let daemon: Daemon
    private let logger: Logger
    /// Builds the target list and refreshes it, off the control queue.
    private let queue = DispatchQueue(label: "petreld.health")
    private var policy: HealthCheckPolicy
    private var forwarder: HealthCheckForwarder?
    private var monitor: HealthMonitor?
    private var forwardedSettings: ForwardingSettings?
    private var timer: DispatchSourceTimer?
    /// How often the target list follows the VIPs (a real added through the admin API is checked from then on).
    static let refreshInterval = DispatchTimeInterval.milliseconds(500)

    init(daemon: Daemon, policy: HealthCheckPolicy, logger: Logger) {
        self.daemon = daemon
        self.policy = policy
        self.logger = logger
    }

    /// Starts checking if any check is enabled; called at start and after each reload.
    func update(policy: HealthCheckPolicy) {
        queue.sync {
            self.policy = policy
            if policy.anyEnabled && monitor == nil { startLocked() }
            refreshLocked()
        }
    }

    func stop() {
        queue.sync {
            timer?.cancel()
            timer = nil
            monitor?.stop()
            monitor = nil
            do {
                try forwarder?.detach()
            } catch {
                logger.error("health-check forwarder detach failed", metadata: ["error": "\(error)"])
            }
            forwarder = nil
        }
    }

    // MARK: Running

    private func startLocked() {
        do {
            let forwarder = try HealthCheckForwarder(interface: daemon.config.interface)
            self.forwarder = forwarder
            monitor = HealthMonitor(forwarder: forwarder, maxInFlight: policy.maxInFlight) { [weak self] transition in
                self?.record(transition)
            }
            logger.notice("health checks started", metadata: [
                "interface": "\(daemon.config.interface)", "max_in_flight": "\(policy.maxInFlight)",
            ])
        } catch {
            logger.error("health checks cannot start; every real stays in service", metadata: ["error": "\(error)"])
            return
        }
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + HealthService.refreshInterval, repeating: HealthService.refreshInterval)
        timer.setEventHandler { [weak self] in self?.refreshLocked() }
        timer.resume()
        self.timer = timer
    }

    /// Follows the VIPs and the forwarding settings (both may change through reloads and the API).
    private func refreshLocked() {
        guard let monitor, let forwarder else { return }
        do {
            if let settings = try daemon.balancer.forwardingSettings(), settings != forwardedSettings {
                try forwarder.configure(settings)
                forwardedSettings = settings
            }
            try monitor.update(targets: policy.targets(for: daemon.balancer.vips), maxInFlight: policy.maxInFlight)
        } catch {
            logger.error("health-check targets not updated", metadata: ["error": "\(error)"])
        }
        // A real that left its VIP (or lost its check) leaves the down set too.
        let down = monitor.down
        if down != daemon.balancer.realsDown { daemon.queue.async { self.applyDown() } }
    }

    /// Runs on the monitor's thread: log at once, apply on the control queue.
    private func record(_ transition: HealthTransition) {
        let metadata: Logger.Metadata = [
            "vip": "\(transition.target.vip)", "real": "\(transition.target.real)", "reason": "\(transition.reason)",
        ]
        if transition.isUp {
            logger.notice("real up: back in service for new connections", metadata: metadata)
        } else {
            logger.warning("real down: out of service for new connections; its established flows stay", metadata: metadata)
        }
        daemon.queue.async { self.applyDown() }
    }

    /// On the control queue: writes the monitor's down set through the balancer's apply plan.
    private func applyDown() {
        guard let monitor = queue.sync(execute: { self.monitor }) else {
            if !daemon.balancer.realsDown.isEmpty { _ = try? daemon.balancer.setRealsDown([]) }
            return
        }
        let down = monitor.down
        guard down != daemon.balancer.realsDown else { return }
        do {
            let report = try daemon.balancer.setRealsDown(down)
            var metadata = Daemon.metadata(report, generation: daemon.generation)
            metadata["reals_down"] = "\(down.count)"
            logger.notice("health change applied", metadata: metadata)
            for vip in vipsWithoutService() {
                logger.warning("VIP has no real in service: its packets are dropped (drop_no_real)", metadata: ["vip": "\(vip)"])
            }
        } catch {
            logger.error("health change not applied; will retry", metadata: ["error": "\(error)"])
            let retry = daemon.queue
            queue.asyncAfter(deadline: .now() + 1) { retry.async { [weak self] in self?.applyDown() } }
        }
    }

    // MARK: Reading

    /// VIPs with reals but none of them in service (weight 0 or down).
    func vipsWithoutService() -> [VipKey] {
        let down = daemon.balancer.realsDown
        return daemon.balancer.vips.filter { vip in
            !vip.reals.isEmpty && !vip.reals.contains { $0.weight > 0 && !down.contains(VipReal(vip: vip.key, real: $0.address)) }
        }.map(\.key)
    }

    /// The monitor, forwarder and policy, read on this service's queue.
    private func current() -> (monitor: HealthMonitor?, forwarder: HealthCheckForwarder?, policy: HealthCheckPolicy) {
        queue.sync { (monitor, forwarder, policy) }
    }

    func document() -> HealthDocument {
        let (monitor, forwarder, policy) = current()
        let reports = Dictionary((monitor?.snapshot() ?? []).map { ($0.target, $0) }, uniquingKeysWith: { $1 })
        let down = daemon.balancer.realsDown
        let iso = ISO8601DateFormatter()
        var reals: [RealHealthDocument] = []
        for vip in daemon.balancer.vips {
            for real in vip.reals {
                let key = VipReal(vip: vip.key, real: real.address)
                let check = policy.check(vip: vip.key, real: real.address)
                let report = reports[key]
                let state = report.map { $0.health.isUp ? "up" : "down" } ?? "unchecked"
                reals.append(RealHealthDocument(
                    vip: "\(vip.key)", real: "\(real.address)", weight: real.weight, check: check.kind.name, state: state,
                    inService: real.weight > 0 && !down.contains(key), lastResult: report?.health.lastResult?.description,
                    lastProbe: report?.health.lastProbe.map(iso.string(from:)), since: report.map { iso.string(from: $0.health.since) },
                    reason: report?.health.reason, wentDown: report?.health.wentDown ?? 0, wentUp: report?.health.wentUp ?? 0))
            }
        }
        let counters = monitor?.currentCounters ?? HealthMonitor.Counters()
        let forwarderCounters = (try? forwarder?.stats()).map { stats in
            Dictionary(stats.map { ($0.key.name, $0.value) }, uniquingKeysWith: { $1 })
        }
        return HealthDocument(reals: reals, vipsWithoutService: vipsWithoutService().map { "\($0)" },
                              probesPassed: counters.passed, probesFailed: counters.failed, probesDelayed: counters.delayedByCap,
                              probesInFlight: counters.inFlight, forwarder: forwarderCounters ?? nil)
    }

    func summary() -> HealthSummaryDocument {
        let reports = current().monitor?.snapshot() ?? []
        let down = reports.filter { !$0.health.isUp }.count
        return HealthSummaryDocument(checked: reports.count, up: reports.count - down, down: down,
                                     vipsWithoutService: vipsWithoutService().map { "\($0)" })
    }
}
