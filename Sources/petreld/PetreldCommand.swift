import ArgumentParser
import Dispatch
import Foundation
import Glibc
import Logging
import NIOCore
import Petrel
import NIOPosix
import PetrelConfig

/// `petreld --config FILE`: runs the balancer until SIGTERM or SIGINT; SIGHUP reloads the file.
struct PetreldCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "petreld",
        abstract: "Run the Petrel XDP load balancer.",
        discussion: """
        Loads the config file, attaches the balancer to the configured interface and serves the admin API on the config's unix socket until SIGTERM or SIGINT.

        Signals:
          SIGHUP: re-read the config file; an invalid file is refused (every issue is logged) and the running config stays; a valid one is applied as a diff.
          SIGTERM, SIGINT: with a `bgp` section, first withdraw every VIP address, keep forwarding for bgp.drain_time seconds and stop BIRD (a second signal ends the drain early); then detach and remove the pinned maps, then exit; with --keep-forwarding-on-exit the program stays attached and the maps stay pinned, so the next petreld adopts them without dropping a connection.

        Exit status: 0 after a signal, 1 when starting failed, 2 when the config file is invalid (docs/operating.md).

        Examples:
          petreld --config /etc/petrel/petrel.yaml
          petreld --config config/demo.yaml --keep-forwarding-on-exit
        """,
        version: PetrelVersion.string
    )

    @Option(name: .long, help: "The config file (YAML; see config/README.md).")
    var config: String

    @Flag(name: .long, help: "On exit, leave the program attached and the maps pinned (for a hitless restart).")
    var keepForwardingOnExit = false

    @Option(name: .long, help: "Least severe log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .long, help: ArgumentHelp("Seconds a client has to send a whole request to the admin and metrics listeners.", valueName: "seconds"))
    var requestDeadline = Int(ServerLimits.standard.requestDeadline.nanoseconds / 1_000_000_000)

    @Option(name: .long, help: ArgumentHelp("Seconds a client with an incomplete request may stay silent.", valueName: "seconds"))
    var idleTimeout = Int(ServerLimits.standard.idleTimeout.nanoseconds / 1_000_000_000)

    @Option(name: .long, help: ArgumentHelp("Longest a packet capture (`petrel capture --seconds`) may run.", valueName: "seconds"))
    var captureMaxSeconds = CaptureFilter.defaultMaxSeconds

    func validate() throws {
        guard (1...86_400).contains(captureMaxSeconds) else {
            throw ValidationError("--capture-max-seconds: must be 1 to 86400 seconds, got \(captureMaxSeconds)")
        }
        guard (1...3_600).contains(requestDeadline) else { throw ValidationError("--request-deadline: must be 1 to 3600 seconds, got \(requestDeadline)") }
        guard (1...3_600).contains(idleTimeout) else { throw ValidationError("--idle-timeout: must be 1 to 3600 seconds, got \(idleTimeout)") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level: must be one of trace, debug, info, notice, warning, error, critical, got \(logLevel)")
        }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "petreld")

        let settings: PetrelConfiguration
        do {
            settings = try ConfigLoader.load(path: config)
        } catch {
            for issue in error.issues { FileHandle.standardError.write(Data("\(issue)\n".utf8)) }
            FileHandle.standardError.write(Data("petreld: \(config) has \(error.issues.count) issue(s); not starting\n".utf8))
            throw ExitCode(ExitStatus.invalidConfig)
        }

        signal(SIGPIPE, SIG_IGN)
        // A reload request during start-up must not kill the process (SIGHUP's default);
        // the config is read afresh at start anyway.
        signal(SIGHUP, SIG_IGN)
        var wanted = ServerLimits.standard
        wanted.requestDeadline = .seconds(Int64(requestDeadline))
        wanted.idleTimeout = .seconds(Int64(idleTimeout))
        let limits = FileDescriptorLimit.fit(wanted, listeners: settings.listenerCount, logger: logger)
        // One event loop serves every connection of every listener; the work runs on the daemon's queues.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let daemon: Daemon
        let servers: [HTTPServer]
        do {
            daemon = try Daemon(configPath: config, config: settings, keepForwardingOnExit: keepForwardingOnExit, logger: logger,
                                captureMaxSeconds: captureMaxSeconds)
            try daemon.queue.sync { try daemon.startAnnouncing() }
            servers = try AdminAPI.startListeners(for: daemon, config: settings, group: group, limits: limits, logger: logger)
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            FileHandle.standardError.write(Data("petreld: \(error)\n".utf8))
            throw ExitCode(ExitStatus.failure)
        }

        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: daemon.queue)
            source.setEventHandler {
                if sig == SIGHUP {
                    daemon.reload(trigger: "SIGHUP")
                } else {
                    logger.notice("stopping", metadata: ["signal": "\(sig == SIGTERM ? "SIGTERM" : "SIGINT")"])
                    daemon.stop {
                        daemon.captures.stopAll(because: "petreld stopping")
                        for server in servers { server.stop() }
                        Glibc.exit(0)
                    }
                }
            }
            source.resume()
            sources.append(source)
        }
        withExtendedLifetime(sources) { dispatchMain() }
    }
}
