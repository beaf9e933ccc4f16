import Glibc
import Logging
import PetrelConfig

/// Open files: every connection is one. petreld raises its soft limit to the hard
/// one (systemd's default soft limit, 1024, is too low for thousands of clients)
/// and, if that is still short, lowers the connection cap so the maps and the
/// listeners always keep fds to work with.
enum FileDescriptorLimit {
    /// Kept free of connections: maps, programs, listeners, the config file, logs.
    static let reserve = 256

    static func fit(_ limits: ServerLimits, listeners: Int, logger: Logger) -> ServerLimits {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return limits }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let available = Int(clamping: limit.rlim_cur) - reserve
        var fitted = limits
        fitted.maxConnections = max(16, min(limits.maxConnections, available / max(listeners, 1)))
        if fitted.maxConnections < limits.maxConnections {
            logger.warning("open-file limit is low: fewer connections per listener", metadata: [
                "limit_nofile": "\(limit.rlim_cur)", "max_connections": "\(fitted.maxConnections)",
                "hint": "raise LimitNOFILE (systemd) or ulimit -n",
            ])
        }
        return fitted
    }
}

extension PetrelConfiguration {
    /// The HTTP listeners this config opens: the admin socket, and admin TCP and metrics if set.
    var listenerCount: Int { 1 + (adminTCP == nil ? 0 : 1) + (metricsListen == nil ? 0 : 1) }
}
