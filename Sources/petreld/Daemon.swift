import Dispatch
import Foundation
import Glibc
import Logging
import Petrel
import PetrelAdmin
import PetrelBPF
import PetrelConfig
import PetrelHealth
import PetrelNetlink

/// A running balancer and the config it was built from. Changes (reloads, admin
/// changes, signals) run one at a time on `queue`; reads (status, metrics) run on
/// `readQueue` and never wait for a reload to read or validate its file.
/// `@unchecked Sendable`: the mutable state below is written only on `queue`,
/// under `stateLock`, and read elsewhere only under `stateLock`.
final class Daemon: @unchecked Sendable {
    let configPath: String
    let keepForwardingOnExit: Bool
    let logger: Logger
    let balancer: LoadBalancer
    /// Signal handlers, reloads and admin changes run here, one at a time.
    let queue = DispatchQueue(label: "petreld.control")
    /// Status calls, listings and scrapes run here, one at a time, beside `queue`.
    let readQueue = DispatchQueue(label: "petreld.reads")
    private let stateLock = NSLock()

    /// The config in force: the file as last loaded, not including admin API changes.
    private(set) var config: PetrelConfiguration
    private(set) var nextHopMAC: MACAddress
    /// 1 for the config read at start, +1 per successful reload.
    private(set) var generation = 1
    private(set) var reloadsSucceeded = 0
    private(set) var reloadsFailed = 0
    private(set) var lastReloadIssues: [String]?
    /// Restart-only settings in which the file, as last reloaded, differs from what runs.
    private(set) var restartNeeded: [String] = []
    /// Health checks (Health/HealthService.swift); set once init is done.
    private(set) var health: HealthService!
    /// The flow log's followers (FlowLog/FlowLogService.swift).
    private(set) var flowLog: FlowLogService!
    /// Packet captures (`GET /v1/capture`); set once init is done.
    private(set) var captures: CaptureService!
    /// BGP announcements (Daemon+BGP.swift); nil without a `bgp` section.
    var announcer: Announcer?
    var announceTimer: DispatchSourceTimer?

    /// Everything `petreld` does before serving: load (or adopt), forward, apply, attach.
    init(configPath: String, config: PetrelConfiguration, keepForwardingOnExit: Bool, logger: Logger,
         captureMaxSeconds: Int = CaptureFilter.defaultMaxSeconds) throws {
        self.configPath = configPath
        self.config = config
        self.keepForwardingOnExit = keepForwardingOnExit
        self.logger = logger

        try PinDirectory.prepare(config.pinPath)
        let limits = DataPlaneLimits(maxVips: config.maxVips, maxReals: config.maxReals,
                                     ringSize: config.ringSize, connectionTableSize: config.connectionTableSize)
        balancer = try LoadBalancer(limits: limits, pinPath: config.pinPath)
        logger.info("data plane loaded", metadata: [
            "pin_path": "\(config.pinPath)", "adopted_pinned_maps": "\(balancer.adoptedPinnedMaps)",
            "vips_in_pinned_maps": "\(balancer.adoptedPinnedMaps ? balancer.vips.count : 0)",
        ])

        nextHopMAC = try Daemon.resolve(config.nextHop, logger: logger)
        try Daemon.configureForwarding(balancer, settings: Daemon.forwardingSettings(config: config, nextHopMAC: nextHopMAC), logger: logger)
        let report = try balancer.apply(config.vips)
        logger.info("config applied", metadata: Daemon.metadata(report, generation: 1))
        try balancer.attach(interface: config.interface, mode: config.attachMode == .native ? .native : .generic)
        logger.notice("attached", metadata: ["interface": "\(config.interface)", "mode": "\(config.attachMode.rawValue)"])
        captures = CaptureService(balancer: balancer, logger: logger, maxSeconds: captureMaxSeconds)
        health = HealthService(daemon: self, policy: config.healthChecks, logger: logger)
        health.update(policy: config.healthChecks)
        flowLog = FlowLogService(balancer: balancer)
    }

    // MARK: Reload

    /// The outcome of a reload, for the admin API.
    enum ReloadOutcome {
        /// `restartNeeded`: restart-only settings the file changes, kept at their running values.
        case applied(ApplyReport, generation: Int, restartNeeded: [String])
        /// The file was invalid or could not be applied; nothing changed.
        case refused(message: String, issues: [String])
    }

    /// Re-reads the config file and applies the difference; an invalid file changes nothing.
    @discardableResult
    func reload(trigger: String) -> ReloadOutcome {
        let fresh: PetrelConfiguration
        do {
            fresh = try ConfigLoader.load(path: configPath)
        } catch {
            let issues = error.issues.map(\.description)
            for issue in issues { logger.error("config issue", metadata: ["issue": "\(issue)"]) }
            return refuse("\(configPath) has \(issues.count) issue(s); the running config stays", issues: issues, trigger: trigger)
        }
        let pending = restartOnlyChanges(to: fresh)
        for change in pending {
            logger.warning("setting needs a restart; keeping the running value", metadata: ["change": "\(change)"])
        }
        // The reloadable settings from the file; everything else (the interface, so its MAC
        // too) stays as it runs.
        var running = config
        running.vips = fresh.vips
        running.nextHop = fresh.nextHop
        running.mtu = fresh.mtu
        running.synFloodThreshold = fresh.synFloodThreshold
        running.icmpEchoReply = fresh.icmpEchoReply
        running.icmpTooBig = fresh.icmpTooBig
        running.icmpRateLimit = fresh.icmpRateLimit
        running.encapSourceV4 = fresh.encapSourceV4
        running.encapSourceV6 = fresh.encapSourceV6
        running.healthChecks = fresh.healthChecks
        running.guePort = fresh.guePort
        do {
            let mac = running.nextHop == config.nextHop ? nextHopMAC : try Daemon.resolve(running.nextHop, logger: logger)
            // Everything that can be refused is checked before anything is written: the
            // forwarding settings first, then apply validates the VIPs before writing them.
            let forwarding = try Daemon.forwardingSettings(config: running, nextHopMAC: mac)
            let report = try balancer.apply(running.vips)
            try Daemon.configureForwarding(balancer, settings: forwarding, logger: logger)
            stateLock.withLock {
                nextHopMAC = mac
                config = running
                generation += 1
                reloadsSucceeded += 1
                lastReloadIssues = nil
                restartNeeded = pending
            }
            health.update(policy: fresh.healthChecks)
            reloadAnnouncements(fresh.bgp)
            var metadata = Daemon.metadata(report, generation: generation)
            metadata["trigger"] = "\(trigger)"
            logger.notice("config reloaded", metadata: metadata)
            return .applied(report, generation: generation, restartNeeded: pending)
        } catch {
            logger.error("config refused", metadata: ["error": "\(error)"])
            return refuse("\(error)", issues: ["\(error)"], trigger: trigger)
        }
    }

    private func refuse(_ message: String, issues: [String], trigger: String) -> ReloadOutcome {
        stateLock.withLock {
            reloadsFailed += 1
            lastReloadIssues = issues
        }
        logger.error("reload refused; the running config stays", metadata: [
            "trigger": "\(trigger)", "generation": "\(generation)", "issues": "\(issues.count)",
        ])
        return .refused(message: message, issues: issues)
    }

    /// Settings fixed for the life of the process (they shape the loaded program, its maps
    /// and listeners) that differ in `fresh`, as "field: FILE in the file, RUNNING running".
    private func restartOnlyChanges(to fresh: PetrelConfiguration) -> [String] {
        func describe(_ value: (some CustomStringConvertible)?) -> String { value.map { "\($0)" } ?? "none" }
        let settings: [(String, String, String)] = [
            ("interface", fresh.interface, config.interface),
            ("attach_mode", fresh.attachMode.rawValue, config.attachMode.rawValue),
            ("ring_size", "\(fresh.ringSize)", "\(config.ringSize)"),
            ("connection_table_size", "\(fresh.connectionTableSize)", "\(config.connectionTableSize)"),
            ("max_vips", "\(fresh.maxVips)", "\(config.maxVips)"),
            ("max_reals", "\(fresh.maxReals)", "\(config.maxReals)"),
            ("pin_path", fresh.pinPath, config.pinPath),
            ("admin.socket", fresh.adminSocket, config.adminSocket),
            ("admin.tcp", describe(fresh.adminTCP), describe(config.adminTCP)),
            ("metrics.listen", describe(fresh.metricsListen), describe(config.metricsListen)),
        ]
        return settings.filter { $0.1 != $0.2 }.map { "\($0.0): \($0.1) in the file, \($0.2) running" }
    }

    // MARK: Shutdown

    /// Detaches and removes the pins, unless asked to keep forwarding for the next petreld.
    func shutdown() {
        health.stop()
        // A program left attached logs nothing for a petreld that is gone.
        try? balancer.setFlowLog(sampleEvery: 0)
        if keepForwardingOnExit {
            logger.notice("leaving the balancer attached and the maps pinned for the next petreld",
                          metadata: ["interface": "\(config.interface)", "pin_path": "\(config.pinPath)"])
            return
        }
        do {
            try balancer.detach(interface: config.interface)
        } catch {
            logger.error("detach failed", metadata: ["error": "\(error)"])
        }
        balancer.removePins()
        logger.notice("detached; pinned maps removed", metadata: ["interface": "\(config.interface)"])
    }

    // MARK: Status

    func status() -> StatusDocument {
        var document = stateLock.withLock {
            StatusDocument(
                config: configPath, generation: generation, interface: config.interface, attachMode: config.attachMode.rawValue,
                attached: false, adopted: balancer.adoptedPinnedMaps, pinPath: config.pinPath, vips: 0,
                reloadsSucceeded: reloadsSucceeded, reloadsFailed: reloadsFailed, lastReloadIssues: lastReloadIssues,
                nextHopMAC: "\(nextHopMAC)", restartNeeded: restartNeeded.isEmpty ? nil : restartNeeded)
        }
        let program = try? balancer.attachedProgram(interface: document.interface)
        document.attached = program != nil
        document.program = program.map { ProgramDocument(id: $0.id, tag: $0.tag.map { String(format: "%02x", $0) }.joined()) }
        document.vips = balancer.vips.count
        document.health = health.summary()
        document.bgp = announcer?.status()
        return document
    }

    // MARK: Helpers

    private static func resolve(_ nextHop: PetrelConfiguration.NextHop, logger: Logger) throws -> MACAddress {
        switch nextHop {
        case .mac(let mac):
            return mac
        case .gateway(let address):
            let mac = try NextHopResolver.resolve(address)
            logger.info("next hop resolved", metadata: ["gateway": "\(address)", "mac": "\(mac)"])
            return mac
        }
    }

    /// The forwarding settings for a config, read from the interface and validated, not yet written.
    private static func forwardingSettings(config: PetrelConfiguration, nextHopMAC: MACAddress) throws -> ForwardingSettings {
        let interface = try NetworkInterface(named: config.interface)
        let settings = ForwardingSettings(interfaceMAC: try interface.mac(), nextHopMAC: nextHopMAC,
                                          mtu: try config.mtu ?? interface.mtu(),
                                          encapSourceV4: config.encapSourceV4, encapSourceV6: config.encapSourceV6,
                                          synFloodThreshold: UInt32(config.synFloodThreshold),
                                          guePort: config.guePort,
                                          icmpEchoReply: config.icmpEchoReply, icmpTooBig: config.icmpTooBig,
                                          icmpRateLimit: UInt32(config.icmpRateLimit))
        try settings.validate()
        return settings
    }

    private static func configureForwarding(_ balancer: LoadBalancer, settings: ForwardingSettings, logger: Logger) throws {
        try balancer.configureForwarding(settings)
        logger.info("forwarding configured", metadata: [
            "interface_mac": "\(settings.interfaceMAC)", "next_hop_mac": "\(settings.nextHopMAC)",
            "mtu": "\(settings.mtu)",
        ])
    }

    static func metadata(_ report: ApplyReport, generation: Int) -> Logger.Metadata {
        ["generation": "\(generation)", "vips_added": "\(report.vipsAdded)", "vips_removed": "\(report.vipsRemoved)",
         "vips_changed": "\(report.vipsChanged)", "reals_added": "\(report.realsAdded)",
         "reals_removed": "\(report.realsRemoved)", "ring_slots_changed": "\(report.ringSlotsChanged)"]
    }
}

/// The bpffs directory the maps are pinned in.
enum PinDirectory {
    /// Creates the directory, after checking it lies on bpffs (mounting it is the caller's job).
    static func prepare(_ path: String) throws {
        let fileSystem = fileSystemType(of: path)
        guard fileSystem == "bpf" else {
            throw PetrelError.invalid(field: "pin_path", value: path,
                                      expected: "must be on a bpffs mount (it is on \(fileSystem ?? "an unknown file system"); mount one with `mount -t bpf bpf /sys/fs/bpf`)")
        }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw PetrelError.invalid(field: "pin_path", value: path, expected: "must be a directory petreld can create (\(error.localizedDescription))")
        }
    }

    /// The type of the file system mounted deepest above `path`, from this process's mount table.
    static func fileSystemType(of path: String) -> String? {
        guard let table = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return nil }
        var best: (point: String, type: String)?
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count >= 3 else { continue }
            let point = fields[1].replacingOccurrences(of: "\\040", with: " ")
            let covers = point == "/" || path == point || path.hasPrefix(point + "/")
            if covers, point.count >= (best?.point.count ?? -1) { best = (point, fields[2]) }
        }
        return best?.type
    }
}
