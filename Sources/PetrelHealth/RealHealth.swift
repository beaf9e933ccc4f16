import Foundation

/// The health of one real of one VIP: up or down, and the run of results that
/// moves it. A real starts up (so a restart or reload disturbs nothing) and
/// goes down after `fall` failures in a row; a down real comes back after
/// `rise` successes in a row. Anything shorter changes nothing.
public struct RealHealth: Sendable, Equatable {
    public private(set) var isUp = true
    /// Consecutive results of the current kind (successes while the last was a success).
    public private(set) var streak = 0
    public private(set) var lastResult: ProbeResult?
    public private(set) var lastProbe: Date?
    /// When the state last changed (or checking began).
    public private(set) var since: Date
    /// Up->down and down->up changes so far.
    public private(set) var wentDown = 0
    public private(set) var wentUp = 0
    /// The result that made the last change, e.g. "timeout" or "HTTP 503".
    public private(set) var reason: String = "assumed up until checked"

    public init(since: Date) { self.since = since }

    /// What a result did to the state.
    public enum Change: Equatable, Sendable {
        case none
        case wentDown(reason: String)
        case wentUp(reason: String)
    }

    /// Records a result; returns the state change it caused, if any.
    public mutating func record(_ result: ProbeResult, rise: Int, fall: Int, at now: Date) -> Change {
        let continues = lastResult.map { $0.passed == result.passed } ?? false
        streak = continues ? streak + 1 : 1
        lastResult = result
        lastProbe = now
        if isUp, !result.passed, streak >= fall {
            isUp = false
            since = now
            wentDown += 1
            reason = "\(result) (\(streak) failure\(streak == 1 ? "" : "s") in a row)"
            return .wentDown(reason: reason)
        }
        if !isUp, result.passed, streak >= rise {
            isUp = true
            since = now
            wentUp += 1
            reason = "\(result) (\(streak) success\(streak == 1 ? "" : "es") in a row)"
            return .wentUp(reason: reason)
        }
        return .none
    }
}
