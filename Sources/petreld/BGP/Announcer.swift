import Foundation
import Logging
import Petrel
import PetrelAdmin
import PetrelConfig

/// Keeps BIRD announcing exactly the VIP addresses this instance can serve.
/// Called on the daemon's queue: after every change to the VIPs, and once a
/// second to notice detaching and to read the sessions' states. `status()` may be
/// called from any queue: it returns the state published after the last change.
final class Announcer: @unchecked Sendable {
    private(set) var settings: BGPConfiguration
    private let source: String
    private let logger: Logger
    private var daemon: BirdDaemon { BirdDaemon(settings: settings.bird) }

    /// The decisions last computed, and the config text BIRD last accepted (nil: not yet, or it failed).
    private(set) var decisions = AddressAnnouncements(vips: [], attached: false, stopping: false)
    private var appliedConfig: String?
    private(set) var sessionStates: [String: String] = [:]
    private(set) var daemonError: String?
    private(set) var stopping = false
    private let publishedLock = NSLock()
    private var published: BGPStatusDocument?

    init(settings: BGPConfiguration, source: String, logger: Logger) {
        self.settings = settings
        self.source = source
        self.logger = logger
    }

    /// Brings BIRD's announcements in line with the VIPs and the attachment; retries BIRD after a failure.
    func reconcile(vips: [Vip], attached: Bool, health: any RealHealth) {
        let fresh = AddressAnnouncements(vips: vips, attached: attached, stopping: stopping, health: health)
        if fresh != decisions {
            for (address, decision) in fresh.decisions where decision != decisions.decision(for: address) {
                logger.notice("BGP announcement", metadata: ["address": "\(address)", "decision": "\(decision.logText)"])
            }
            decisions = fresh
        }
        defer { publish() }
        let text = BirdConfig.render(settings, announcing: decisions.announced, source: source)
        guard text != appliedConfig else { return }
        do {
            try write(text)
            try daemon.ensureRunning()
            try daemon.reconfigure()
            appliedConfig = text
            if daemonError != nil { logger.notice("BIRD answers again", metadata: ["socket": "\(settings.bird.controlSocket)"]) }
            daemonError = nil
        } catch {
            if daemonError != "\(error)" { logger.error("BGP announcements not applied", metadata: ["error": "\(error)"]) }
            daemonError = "\(error)"
            appliedConfig = nil
        }
    }

    /// A reloaded `bgp` section: neighbours, timers and attributes change in place.
    func update(settings fresh: BGPConfiguration) {
        if fresh.bird != settings.bird {
            logger.warning("setting needs a restart; keeping the running value", metadata: ["field": "bgp.bird"])
        }
        var kept = fresh
        kept.bird = settings.bird
        settings = kept
    }

    /// Reads each session's state from BIRD (for status and metrics).
    func pollSessions() {
        defer { publish() }
        do {
            sessionStates = try daemon.sessionStates()
        } catch {
            sessionStates = [:]
            if daemonError == nil { logger.error("cannot read BGP sessions", metadata: ["error": "\(error)"]) }
            daemonError = "\(error)"
            appliedConfig = nil  // BIRD may have restarted: write and reconfigure again
        }
    }

    /// SIGTERM, step 1: withdraw every address; from now on nothing is announced.
    func withdrawAll(vips: [Vip], attached: Bool) {
        stopping = true
        reconcile(vips: vips, attached: attached, health: AssumeHealthy())
    }

    /// SIGTERM, last step: stop BIRD, closing its sessions.
    func stopDaemon() {
        do {
            try daemon.stop()
            logger.notice("BIRD stopped", metadata: ["socket": "\(settings.bird.controlSocket)"])
        } catch {
            logger.error("cannot stop BIRD", metadata: ["error": "\(error)"])
        }
    }

    // MARK: Visibility

    /// The state as of the last reconcile or poll.
    func status() -> BGPStatusDocument {
        publishedLock.withLock { published } ?? snapshot()
    }

    private func publish() {
        let document = snapshot()
        publishedLock.withLock { published = document }
    }

    private func snapshot() -> BGPStatusDocument {
        let sessions = settings.neighbors.enumerated().map { index, neighbor in
            BGPStatusDocument.Session(neighbor: "\(neighbor.address)", asn: neighbor.asn,
                                      state: sessionStates[BirdConfig.protocolName(ofNeighborAt: index)] ?? "Down")
        }
        let addresses = decisions.decisions.map { address, decision -> BGPStatusDocument.Address in
            switch decision {
            case .withdraw(let reason):
                return .init(address: "\(address)", state: "withdrawn", reason: reason.rawValue)
            case .announce where appliedConfig == nil:
                return .init(address: "\(address)", state: "withdrawn", reason: "daemon_error")
            case .announce:
                let up = settings.neighbors.indices.contains { index in
                    settings.neighbors[index].address.family == address.family
                        && sessionStates[BirdConfig.protocolName(ofNeighborAt: index)] == "Established"
                }
                return .init(address: "\(address)", state: up ? "announced" : "waiting_for_session", reason: nil)
            }
        }
        return BGPStatusDocument(localASN: settings.localASN, routerID: "\(settings.routerID)", draining: stopping,
                                 daemonError: daemonError, sessions: sessions, addresses: addresses)
    }

    private func write(_ text: String) throws {
        let url = URL(fileURLWithPath: settings.bird.configFile)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        // Written whole, then renamed: BIRD never reads half a file.
        try Data(text.utf8).write(to: url, options: .atomic)
    }
}

extension AddressAnnouncements {
    func decision(for address: IPAddress) -> Decision? {
        decisions.first { $0.address == address }?.decision
    }
}

extension AddressAnnouncements.Decision {
    var logText: String {
        switch self {
        case .announce: return "announce"
        case .withdraw(let reason): return "withdraw (\(reason.rawValue))"
        }
    }
}
