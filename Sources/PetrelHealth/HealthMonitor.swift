import Dispatch
import Foundation
import Glibc
import Petrel

/// A change of one real's state, for the log and the data plane.
public struct HealthTransition: Sendable {
    public var target: VipReal
    public var isUp: Bool
    /// The result that made the change, e.g. "refused (3 failures in a row)".
    public var reason: String
    public var at: Date
}

/// One real of one VIP as `petrel real list` shows it.
public struct HealthReport: Sendable {
    public var target: VipReal
    public var check: HealthCheck
    public var health: RealHealth
}

/// Runs every check on one thread of its own: at most `maxInFlight` probes at
/// once, each one nonblocking socket multiplexed with poll(2), so neither slow
/// probes nor many reals can use up threads or fds, and the caller's queues
/// (the daemon's control queue) never wait for a probe. Results move each
/// real's `RealHealth`; changes go to `onTransition`, called on this thread.
/// `@unchecked Sendable`: the mutable state is touched only under `lock`; `thread` is set
/// once by `start()` before the thread runs.
public final class HealthMonitor: @unchecked Sendable {
    /// Probe outcomes and waits since the start, for metrics.
    public struct Counters: Sendable {
        public var passed: UInt64 = 0
        public var failed: UInt64 = 0
        /// Probes that started more than 10 ms late because `maxInFlight` others ran.
        public var delayedByCap: UInt64 = 0
        public var inFlight = 0
        public init() {}
    }

    private struct Entry {
        var target: HealthTarget
        var health: RealHealth
        /// Monotonic nanoseconds when the next probe is due.
        var due: UInt64
        var probing = false
    }

    private let forwarder: HealthCheckForwarder?
    private let onTransition: @Sendable (HealthTransition) -> Void
    private let lock = NSLock()
    private var entries: [VipReal: Entry] = [:]
    /// The forwarder's target id per real address (its mark's low bits).
    private var markIds: [IPAddress: Int] = [:]
    private var maxInFlight: Int
    private var counters = Counters()
    private var stopping = false
    /// A pipe that update() and stop() write to, so poll returns at once.
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private var thread: Thread?
    private let finished = DispatchSemaphore(value: 0)

    /// With a forwarder, each probe carries the mark of its real and goes through
    /// the VIP path; without one, probes go wherever the routing table sends them
    /// (for tests against local servers).
    public init(forwarder: HealthCheckForwarder?, maxInFlight: Int = HealthCheck.Defaults.maxInFlight,
                onTransition: @escaping @Sendable (HealthTransition) -> Void) {
        self.forwarder = forwarder
        self.maxInFlight = maxInFlight
        self.onTransition = onTransition
        var ends: [Int32] = [-1, -1]
        if pipe(&ends) != 0 { fatalError("petrel health: pipe failed: \(String(cString: strerror(errno)))") }
        for end in ends {
            _ = fcntl(end, F_SETFL, O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        (wakeRead, wakeWrite) = (ends[0], ends[1])
        let thread = Thread { [unowned self] in self.run() }
        thread.name = "petrel.health"
        self.thread = thread
        thread.start()
    }

    deinit {
        Glibc.close(wakeRead)
        Glibc.close(wakeWrite)
    }

    /// Stops probing and waits for the thread (open probes are closed).
    public func stop() {
        lock.lock()
        let wasRunning = !stopping
        stopping = true
        lock.unlock()
        guard wasRunning else { return }
        wake()
        finished.wait()
    }

    // MARK: What is checked

    /// Makes the monitor check exactly `targets`. A real already checked keeps its
    /// state (and, if its check changed, starts the new one from that state); a
    /// new one starts up and is first probed within one interval.
    public func update(targets: [HealthTarget], maxInFlight: Int? = nil) throws(PetrelError) {
        lock.lock()
        defer { lock.unlock() }
        if let maxInFlight { self.maxInFlight = maxInFlight }
        let now = HealthMonitor.now()
        var fresh: [VipReal: Entry] = [:]
        for target in targets {
            if var entry = entries[target.key] {
                entry.target = target
                fresh[target.key] = entry
            } else {
                // A random phase spreads the probes of many reals over the interval.
                let phase = UInt64.random(in: 0..<UInt64(target.check.intervalMilliseconds)) * 1_000_000
                fresh[target.key] = Entry(target: target, health: RealHealth(since: Date()), due: now + phase)
            }
        }
        let addresses = Set(fresh.keys.map(\.real))
        if let forwarder {
            for address in markIds.keys where !addresses.contains(address) {
                try forwarder.removeTarget(markIds[address]!)
                markIds[address] = nil
            }
            let used = Set(markIds.values)
            var free = (1...HealthCheckForwarder.maxTargets).lazy.filter { !used.contains($0) }.makeIterator()
            for address in addresses.sorted() where markIds[address] == nil {
                guard let id = free.next() else {
                    throw .limitExceeded(limit: "health-checked real addresses", requested: addresses.count, maximum: HealthCheckForwarder.maxTargets)
                }
                try forwarder.setTarget(id, real: address)
                markIds[address] = id
            }
        }
        entries = fresh
        wake()
    }

    /// Every checked real, sorted by VIP then real.
    public func snapshot() -> [HealthReport] {
        lock.lock()
        defer { lock.unlock() }
        return entries.values.map { HealthReport(target: $0.target.key, check: $0.target.check, health: $0.health) }
            .sorted { $0.target < $1.target }
    }

    /// The reals currently down.
    public var down: Set<VipReal> {
        lock.lock()
        defer { lock.unlock() }
        return Set(entries.values.filter { !$0.health.isUp }.map(\.target.key))
    }

    public var currentCounters: Counters {
        lock.lock()
        defer { lock.unlock() }
        return counters
    }

    // MARK: The loop

    private func run() {
        var probes: [Probe] = []
        while true {
            lock.lock()
            if stopping {
                lock.unlock()
                break
            }
            let now = HealthMonitor.now()
            var starting: [(Probe, UInt32?)] = []
            var nextDue = UInt64.max
            // With every slot taken there is nothing to start: skip the scan.
            let due = probes.count < maxInFlight
                ? entries.values.filter { !$0.probing && $0.due <= now }.sorted { $0.due < $1.due } : []
            for entry in due {
                guard probes.count + starting.count < maxInFlight else { break }
                // Started more than 10 ms after it was due: it waited for a free slot.
                if now > entry.due + 10_000_000 { counters.delayedByCap += 1 }
                let key = entry.target.key
                let interval = UInt64(entry.target.check.intervalMilliseconds) * 1_000_000
                entries[key]!.probing = true
                // Keep the rhythm, but never catch up with a burst after a delay.
                entries[key]!.due = max(entry.due + interval, now + interval / 2)
                starting.append((Probe(target: entry.target, now: now), markIds[key.real].map(HealthCheckForwarder.mark(forTarget:))))
            }
            if probes.count + starting.count < maxInFlight {
                for entry in entries.values where !entry.probing { nextDue = min(nextDue, entry.due) }
            }
            counters.inFlight = probes.count + starting.count
            lock.unlock()

            for (probe, mark) in starting {
                if forwarder != nil, mark == nil {
                    finish(probe, .failed(.error("no forwarding target for \(probe.target.real)")))
                } else if let result = probe.start(mark: mark) {
                    finish(probe, result)
                } else {
                    probes.append(probe)
                }
            }

            // Sleep until a socket is ready, a probe times out, a probe is due, or update()/stop() wakes us.
            let wakeAt = probes.reduce(nextDue) { min($0, $1.deadline) }
            let nowAfterStart = HealthMonitor.now()
            let timeout = wakeAt == .max ? 1000 : Int32(min(1000, (wakeAt > nowAfterStart ? wakeAt - nowAfterStart : 0) / 1_000_000 + 1))
            var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)] + probes.map { pollfd(fd: $0.fd, events: $0.events, revents: 0) }
            _ = poll(&fds, nfds_t(fds.count), timeout)
            if fds[0].revents != 0 {
                var drain = [UInt8](repeating: 0, count: 64)
                while read(wakeRead, &drain, drain.count) > 0 {}
            }
            let afterPoll = HealthMonitor.now()
            var open: [Probe] = []
            for (index, probe) in probes.enumerated() {
                let revents = fds[index + 1].revents
                if revents != 0, let result = probe.advance(revents: revents) {
                    finish(probe, result)
                } else if afterPoll >= probe.deadline {
                    finish(probe, .failed(.timeout))
                } else {
                    open.append(probe)
                }
            }
            probes = open
        }
        for probe in probes { probe.close() }
        finished.signal()
    }

    private func finish(_ probe: Probe, _ result: ProbeResult) {
        probe.close()
        let key = probe.target.key
        lock.lock()
        if result.passed { counters.passed += 1 } else { counters.failed += 1 }
        guard var entry = entries[key] else {
            lock.unlock()
            return
        }
        entry.probing = false
        let now = Date()
        let change = entry.health.record(result, rise: entry.target.check.rise, fall: entry.target.check.fall, at: now)
        entries[key] = entry
        lock.unlock()
        switch change {
        case .none: break
        case .wentDown(let reason): onTransition(HealthTransition(target: key, isUp: false, reason: reason, at: now))
        case .wentUp(let reason): onTransition(HealthTransition(target: key, isUp: true, reason: reason, at: now))
        }
    }

    private func wake() {
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}
