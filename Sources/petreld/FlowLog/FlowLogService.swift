import Dispatch
import Foundation
import Petrel
import PetrelAdmin
import PetrelBPF

/// The flow log's followers (`GET /v1/flows`). While at least one follows, the data
/// plane logs 1 decision in g (g: the gcd of the followers' `sample`), one thread reads
/// its ring and hands each decision to every follower it is for; with none, the data
/// plane is told to log nothing and the reader is stopped.
///
/// Bounded: at most `maxFollowers`; each follower's lines wait in a buffer of at most
/// `maxPendingBytes` until its stream takes them (every `flushInterval`), and the stream
/// itself holds at most `ServerLimits.maxStreamBufferBytes`. A line that does not fit
/// is dropped and counted for that follower; a full data-plane ring drops and counts
/// in the kernel (`event_flow_log_lost`). So a flood or a slow client costs bounded
/// memory and never slows the data plane or the other followers.
/// `@unchecked Sendable`: `followers` and the counters are behind `lock`; starting and
/// stopping the reader happens on `lifecycle`, one at a time (a new reader starts only
/// after the last one's thread ended, so `vipNames` is touched by one thread at a time).
final class FlowLogService: @unchecked Sendable {
    static let maxFollowers = 8
    static let maxPendingBytes = 256 * 1024
    static let flushInterval = DispatchTimeInterval.milliseconds(50)

    struct Counters {
        /// Lines handed to followers' streams, over all followers so far.
        var sent = 0
        /// Lines dropped because a follower was slow.
        var dropped = 0
        /// Follow requests served.
        var follows = 0
    }

    private let balancer: LoadBalancer
    private let lock = NSLock()
    private var followers: [ObjectIdentifier: Follower] = [:]
    private var ended = Counters()
    private let lifecycle = DispatchQueue(label: "petreld.flowlog")
    private var reader: BPFRingBufferReader?

    init(balancer: LoadBalancer) {
        self.balancer = balancer
        // An earlier petreld may have left the log on in maps it pinned.
        try? balancer.setFlowLog(sampleEvery: 0)
    }

    enum Refusal: Error { case tooManyFollowers }

    /// Follows the log for `query` until its count or time is reached, the client goes,
    /// or petreld stops. `startStream` sends the answer's head (only once a place is
    /// free; nil if the client has gone meanwhile).
    func follow(_ query: FlowLogQuery, startStream: () -> HTTPBodyStream?) throws {
        let lostBefore = lostInKernel()
        try lifecycle.sync {
            guard lock.withLock({ followers.count }) < Self.maxFollowers else { throw Refusal.tooManyFollowers }
            guard let stream = startStream() else { return }
            let follower = Follower(query: query, stream: stream, lostBefore: lostBefore, service: self)
            lock.withLock {
                followers[ObjectIdentifier(follower)] = follower
                ended.follows += 1
            }
            do {
                try retune()
            } catch {
                lock.withLock { _ = followers.removeValue(forKey: ObjectIdentifier(follower)) }
                stream.finish(trailers: ["Petrel-Stream-End": "the flow log could not be started: \(error)"])
                return
            }
            follower.start()
            // Leaving may wait for the reader's thread: not on the event loop that reports the end.
            stream.onEnd { [weak follower] end in
                DispatchQueue.global().async { [weak follower] in follower?.streamEnded(end) }
            }
        }
    }

    /// Followers now, and the counters summed over every follower past and present.
    var snapshot: (followers: Int, counters: Counters) {
        lock.withLock {
            var total = ended
            for follower in followers.values {
                let (sent, dropped) = follower.tally
                total.sent += sent
                total.dropped += dropped
            }
            return (followers.count, total)
        }
    }

    /// The kernel's lost count now (for a follower's summary).
    func lostInKernel() -> UInt64 { (try? balancer.stats()[.eventFlowLogLost]) ?? 0 }

    func remove(_ follower: Follower) {
        lifecycle.sync {
            let removed = lock.withLock { () -> Bool in
                guard followers.removeValue(forKey: ObjectIdentifier(follower)) != nil else { return false }
                let (sent, dropped) = follower.tally
                ended.sent += sent
                ended.dropped += dropped
                return true
            }
            if removed { try? retune() }
        }
    }

    /// Points the data plane and the followers at the gcd of the followers' samples,
    /// or turns the log off and stops the reader when nobody follows. On `lifecycle`.
    private func retune() throws {
        let current = lock.withLock { Array(followers.values) }
        guard !current.isEmpty else {
            try? balancer.setFlowLog(sampleEvery: 0)
            reader?.stop()  // waits for the reader's thread; it takes only `lock`, never `lifecycle`
            reader = nil
            return
        }
        let every = current.map(\.query.sample).reduce(0, gcd)
        for follower in current { follower.setStep(follower.query.sample / every) }
        if reader == nil {
            reader = try balancer.readFlowLog { [weak self] decision in self?.deliver(decision) }
        }
        try balancer.setFlowLog(sampleEvery: UInt32(every))
    }

    /// VIP names by data-plane index, read again when older than a second or when an
    /// index is unknown (at most every 100 ms). Touched on the reader's thread only.
    private var vipNames: [UInt32: VipKey] = [:]
    private var vipNamesRead: UInt64 = 0

    private func vipName(_ index: UInt32) -> VipKey? {
        let now = DispatchTime.now().uptimeNanoseconds
        let age = now &- vipNamesRead
        if age >= 1_000_000_000 || (vipNames[index] == nil && age >= 100_000_000) {
            vipNames = balancer.vipKeysByIndex()
            vipNamesRead = now
        }
        return vipNames[index]
    }

    /// On the reader's thread: every follower the decision is for gets it.
    private func deliver(_ decision: FlowDecision) {
        let current = lock.withLock { Array(followers.values) }
        guard !current.isEmpty else { return }
        let vip = vipName(decision.vipIndex)
        var line: Data?
        for follower in current where follower.query.vip == nil || follower.query.vip == vip {
            if line == nil { line = FlowLogLine(decision, vip: vip).encoded() }
            follower.offer(line!)
        }
    }

    private func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
}

/// One follow request: its pending lines, its counters, its flush timer.
/// `@unchecked Sendable`: the mutable state is behind `lock`.
final class Follower: @unchecked Sendable {
    let query: FlowLogQuery
    private let stream: HTTPBodyStream
    private let lostBefore: UInt64
    private unowned let service: FlowLogService
    private let lock = NSLock()
    private var pending = Data()
    private var pendingLines = 0
    private var sent = 0
    private var dropped = 0
    /// Of the decisions the data plane logs (1 in g), this follower takes 1 in `step`.
    private var step = 1
    private var seen = 0
    private var done = false
    private var timer: DispatchSourceTimer?
    private let deadline: DispatchTime

    init(query: FlowLogQuery, stream: HTTPBodyStream, lostBefore: UInt64, service: FlowLogService) {
        self.query = query
        self.stream = stream
        self.lostBefore = lostBefore
        self.service = service
        deadline = .now() + .seconds(query.seconds)
    }

    var tally: (sent: Int, dropped: Int) { lock.withLock { (sent, dropped) } }

    func setStep(_ step: Int) { lock.withLock { self.step = max(1, step) } }

    func start() {
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global())
        timer.schedule(deadline: .now() + FlowLogService.flushInterval, repeating: FlowLogService.flushInterval)
        timer.setEventHandler { [weak self] in self?.flush() }
        lock.withLock { self.timer = timer }
        timer.resume()
    }

    /// On the reader's thread: queue one line, or drop and count it if the buffer is full.
    func offer(_ line: Data) {
        lock.withLock {
            guard !done else { return }
            seen += 1
            guard (seen - 1) % step == 0, sent + pendingLines < query.count else { return }
            if pending.count + line.count > FlowLogService.maxPendingBytes {
                dropped += 1
            } else {
                pending.append(line)
                pendingLines += 1
            }
        }
    }

    /// On the timer: hand what is pending to the stream; end at the count or the deadline.
    private func flush() {
        let (batch, lines) = lock.withLock { () -> (Data, Int) in
            defer { pending = Data(); pendingLines = 0 }
            return (pending, pendingLines)
        }
        if lines > 0 {
            // The stream drops a whole batch when its client is too slow: counted as dropped.
            let taken = stream.write(batch)
            lock.withLock { if taken { sent += lines } else { dropped += lines } }
        }
        let reached = lock.withLock { sent >= query.count }
        if reached { finish("count") } else if DispatchTime.now() >= deadline { finish("seconds") }
    }

    private func finish(_ reason: String) {
        guard let (sent, dropped) = stop() else { return }
        let lost = Int(service.lostInKernel() &- lostBefore)
        let summary = FlowLogSummary(sent: sent, dropped: dropped, lostInKernel: max(0, lost), ended: reason)
        stream.finish(trailers: [FlowLogSummary.trailer: String(decoding: AdminJSON.encodeCompact(summary), as: UTF8.self)])
    }

    /// The client went or petreld stops.
    func streamEnded(_ end: HTTPBodyStream.End) { _ = stop() }

    /// Stops the timer and leaves the service; returns the tally the first time only.
    private func stop() -> (Int, Int)? {
        let result = lock.withLock { () -> (DispatchSourceTimer?, (Int, Int))? in
            guard !done else { return nil }
            done = true
            defer { timer = nil }
            return (timer, (sent, dropped))
        }
        guard let (timer, tally) = result else { return nil }
        timer?.cancel()
        service.remove(self)
        return tally
    }
}
