import Dispatch
import Foundation
import Glibc
import Logging
import Petrel
import PetrelConfig

// The daemon's BGP duties: announce the VIP addresses while they can be served,
// withdraw them first on SIGTERM, and show the sessions in status and metrics.

extension Daemon {
    /// With a `bgp` section: starts (or adopts) BIRD, announces, and re-checks once a second.
    /// Throws when BIRD cannot be started with the generated config.
    func startAnnouncing() throws {
        guard let bgp = config.bgp else { return }
        let announcer = Announcer(settings: bgp, source: configPath, logger: logger)
        announcer.reconcile(vips: balancer.vips, attached: isAttached, health: realHealth)
        if let error = announcer.daemonError { throw BirdControl.Failure(description: error) }
        announcer.pollSessions()
        self.announcer = announcer
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + 1, repeating: 1)
        timer.setEventHandler { [weak self] in
            guard let self, let announcer = self.announcer else { return }
            announcer.reconcile(vips: self.balancer.vips, attached: self.isAttached, health: self.realHealth)
            announcer.pollSessions()
        }
        timer.resume()
        announceTimer = timer
    }

    /// After a change to the VIPs (reload or admin API): announce or withdraw at once.
    func reconcileAnnouncements() {
        announcer?.reconcile(vips: balancer.vips, attached: isAttached, health: realHealth)
    }

    /// A reload's `bgp` section. Adding or removing the section needs a restart.
    func reloadAnnouncements(_ fresh: BGPConfiguration?) {
        switch (announcer, fresh) {
        case let (announcer?, fresh?):
            // The announcer keeps the running bgp settings; `config.bgp` stays as read at start.
            announcer.update(settings: fresh)
        case (nil, nil):
            break
        default:
            logger.warning("setting needs a restart; keeping the running value", metadata: ["field": "bgp"])
        }
        reconcileAnnouncements()
    }

    /// The health checks' verdict: a real they hold down is not usable for its VIP.
    var realHealth: any RealHealth { HealthChecked(down: balancer.realsDown) }

    var isAttached: Bool { (try? balancer.isAttached(interface: config.interface)) ?? false }

    /// SIGTERM: withdraw every address, keep forwarding for `drain_time` while the
    /// routers move traffic away, then stop BIRD and shut down. A second signal
    /// during the drain skips the rest of it.
    func stop(then finish: @escaping @Sendable () -> Void) {
        guard let announcer else {
            shutdown()
            finish()
            return
        }
        if announcer.stopping {
            logger.notice("second stop signal: ending the drain now")
            completeStop(finish)
            return
        }
        announcer.withdrawAll(vips: balancer.vips, attached: isAttached)
        let drain = announcer.settings.drainTime
        logger.notice("BGP: every address withdrawn; draining before stopping", metadata: ["drain_time": "\(drain)"])
        queue.asyncAfter(deadline: .now() + .seconds(drain)) { [self] in completeStop(finish) }
    }

    private func completeStop(_ finish: @Sendable () -> Void) {
        announceTimer?.cancel()
        announcer?.stopDaemon()
        shutdown()
        finish()
    }

    /// The BGP families of the metrics page.
    func bgpMetrics(into page: inout MetricsPage) {
        guard let status = announcer?.status() else { return }
        page.gauge("petrel_bgp_session_up", "1 while the BGP session with the neighbor is Established.",
                   status.sessions.map { ([("neighbor", $0.neighbor), ("asn", "\($0.asn)"), ("state", $0.state)], $0.established ? 1 : 0) })
        page.gauge("petrel_bgp_address_announced",
                   "1 while the VIP address is announced on at least one established session.",
                   status.addresses.map { ([("address", $0.address), ("state", $0.state), ("reason", $0.reason ?? "")], $0.state == "announced" ? 1 : 0) })
        page.gauge("petrel_bgp_draining", "1 from SIGTERM on, while petreld drains before stopping.", [([], status.draining ? 1 : 0)])
    }
}
