import Foundation
import Logging
import NIOConcurrencyHelpers
import Petrel
import PetrelAdmin
import PetrelBPF

/// `GET /v1/capture`: runs captures in the data plane's slots and streams each
/// one's packets as pcap or pcapng. One ring-buffer reader serves every running
/// capture (it runs while any does); a capture ends at its packet count, its
/// time limit, when its client goes or when petreld stops, and its summary
/// (packets, losses, why it stopped) goes in the stream's trailers.
final class CaptureService: Sendable {
    /// Totals over every capture since petreld started, for the metrics.
    struct Totals: Sendable {
        var started = 0
        var refused = 0
        var packets: UInt64 = 0
        var lostRingFull: UInt64 = 0
        var lostSlowClient: UInt64 = 0
    }

    private struct State {
        var sessions: [Int: CaptureSession] = [:]
        var reader: BPFRingBufferReader?
        var totals = Totals()
    }

    let balancer: LoadBalancer
    let logger: Logger
    let maxSeconds: Int
    private let state = NIOLockedValueBox(State())

    init(balancer: LoadBalancer, logger: Logger, maxSeconds: Int) {
        self.balancer = balancer
        self.logger = logger
        self.maxSeconds = maxSeconds
    }

    var totals: Totals { state.withLockedValue { $0.totals } }
    var running: Int { state.withLockedValue { $0.sessions.count } }

    /// Starts a capture for `request` and streams it through `reply`; a bad request or no free slot is answered at once.
    func start(_ request: HTTPRequest, reply: HTTPReply) {
        let filter: CaptureFilter
        let slot: Int
        do {
            filter = try CaptureQuery.filter(from: request.query)
            guard let claimed = try balancer.startCapture(filter, maxSeconds: maxSeconds) else {
                state.withLockedValue { $0.totals.refused += 1 }
                let busy = state.withLockedValue { $0.sessions.values.map(\.description).sorted() }
                return reply(AdminAPI.error(409, "all \(CaptureSlots.count) capture slots are in use (\(busy.joined(separator: "; "))); "
                    + "wait for one to end or stop one"))
            }
            slot = claimed
        } catch {
            if case .kernel = error { return reply(AdminAPI.error(500, "\(error)")) }
            return reply(AdminAPI.error(400, "\(error)"))
        }
        let writer = PacketFileWriter(format: filter.format, snapLength: filter.snapLength)
        guard let stream = reply.stream(contentType: writer.contentType, headers: ["Petrel-Capture-Slot": "\(slot)"]) else {
            try? balancer.captures.stop(slot)
            return
        }
        let session = CaptureSession(slot: slot, filter: filter, writer: writer, stream: stream, names: balancer.captureNames())
        do {
            try state.withLockedValue { state in
                state.sessions[slot] = session
                state.totals.started += 1
                if state.reader == nil {
                    state.reader = try balancer.captures.reader(threadName: "petrel.capture") { [weak self] record in
                        self?.deliver(record)
                    }
                }
            }
        } catch {
            logger.error("capture: cannot read the ring buffer", metadata: ["error": "\(error)"])
            end(session, because: "error: \(error)")
            return
        }
        logger.info("capture started", metadata: ["slot": "\(slot)", "filter": "\(session.description)"])
        stream.onEnd { [weak self] end in
            // Called on the event loop: ending may wait for the reader's thread, so not here.
            let reason: String
            switch end {
            case .finished: return
            case .clientGone: reason = "client went"
            case .serverStopping: reason = "petreld stopping"
            }
            guard let service = self else { return }
            DispatchQueue.global().async { service.end(session, because: reason) }
        }
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + .seconds(filter.seconds))
        timer.setEventHandler { [weak self, weak session] in
            guard let session else { return }
            self?.end(session, because: "time limit (\(filter.seconds) s)")
        }
        session.setTimer(timer)
        timer.resume()
    }

    /// Ends every running capture (each client gets its summary).
    func stopAll(because reason: String) {
        let sessions = state.withLockedValue { Array($0.sessions.values) }
        for session in sessions { end(session, because: reason) }
    }

    /// One record from the ring: to every running capture whose slot selected it.
    private func deliver(_ record: UnsafeRawBufferPointer) {
        guard let packet = CapturedPacket(record: record) else { return }
        let sessions = state.withLockedValue { state in state.sessions.values.filter { packet.slots & (1 << UInt32($0.slot)) != 0 } }
        for session in sessions where session.take(packet) == .countReached {
            // Not on this thread: ending the last capture stops (and waits for) this reader.
            DispatchQueue.global().async { [weak self] in self?.end(session, because: "count reached (\(session.filter.count) packets)") }
        }
    }

    /// Ends a capture once: stops its slot, sends the summary, frees the slot; the last one stops the reader.
    private func end(_ session: CaptureSession, because reason: String) {
        guard session.markEnded() else { return }
        session.setTimer(nil)
        try? balancer.captures.stop(session.slot)
        let counts = (try? balancer.captures.counts(session.slot)) ?? CaptureSlots.Counts()
        let summary = session.summary(counts: counts, stoppedBy: reason)
        session.stream.finish(trailers: ["Petrel-Capture-Summary": summary])
        let reader: BPFRingBufferReader? = state.withLockedValue { state in
            if state.sessions[session.slot] === session { state.sessions[session.slot] = nil }
            state.totals.packets += session.packetsWritten
            state.totals.lostRingFull += counts.lost
            state.totals.lostSlowClient += session.droppedForSlowClient
            guard state.sessions.isEmpty else { return nil }
            defer { state.reader = nil }
            return state.reader
        }
        // Stopped outside the lock: the reader's thread may be waiting for it in deliver.
        reader?.stop()
        logger.info("capture ended", metadata: ["slot": "\(session.slot)", "summary": "\(summary)"])
    }
}

/// One running capture: its filter, its file writer and its client's stream.
final class CaptureSession: Sendable, CustomStringConvertible {
    enum Taken { case written, ignored, countReached }

    /// `@unchecked Sendable`: the timer is touched only under the box's lock.
    private struct State: @unchecked Sendable {
        var written = 0
        var droppedForSlowClient: UInt64 = 0
        var ended = false
        var timer: DispatchSourceTimer?
    }

    let slot: Int
    let filter: CaptureFilter
    let writer: PacketFileWriter
    let stream: HTTPBodyStream
    private let names: (vips: [UInt32: VipKey], reals: [UInt32: IPAddress])
    /// Records stamped before this came from an earlier capture in the same slot.
    private let startedAt = DispatchTime.now().uptimeNanoseconds
    private let state = NIOLockedValueBox(State())

    init(slot: Int, filter: CaptureFilter, writer: PacketFileWriter, stream: HTTPBodyStream,
         names: (vips: [UInt32: VipKey], reals: [UInt32: IPAddress])) {
        self.slot = slot
        self.filter = filter
        self.writer = writer
        self.stream = stream
        self.names = names
        stream.write(writer.header())
    }

    var packetsWritten: UInt64 { UInt64(state.withLockedValue { $0.written }) }
    var droppedForSlowClient: UInt64 { state.withLockedValue { $0.droppedForSlowClient } }

    /// Writes one packet unless the capture has its count (or has ended).
    func take(_ packet: CapturedPacket) -> Taken {
        guard packet.monotonicNanoseconds >= startedAt else { return .ignored }
        let go = state.withLockedValue { state -> Bool in
            !state.ended && state.written < filter.count
        }
        guard go else { return .ignored }
        let bytes = writer.record(packet, comment: comment(packet))
        return state.withLockedValue { state in
            if stream.write(bytes) {
                state.written += 1
            } else {
                state.droppedForSlowClient += 1
            }
            return state.written >= filter.count ? .countReached : .written
        }
    }

    /// The time limit's timer; replacing it cancels the one before (so an ended capture holds nothing).
    func setTimer(_ timer: DispatchSourceTimer?) {
        let old = state.withLockedValue { state in
            defer { state.timer = timer }
            return state.timer
        }
        old?.cancel()
    }

    /// True the first time only.
    func markEnded() -> Bool {
        state.withLockedValue { state in
            defer { state.ended = true }
            return !state.ended
        }
    }

    /// `outcome=forward vip=tcp/198.18.100.1:80 real=198.18.3.11 direction=received`.
    func comment(_ packet: CapturedPacket) -> String {
        var parts = ["outcome=\(packet.outcome?.name ?? "unknown")"]
        if let index = packet.vipIndex { parts.append("vip=\(names.vips[index].map { "\($0)" } ?? "#\(index)")") }
        if let id = packet.realId { parts.append("real=\(names.reals[id].map { "\($0)" } ?? "#\(id)")") }
        parts.append("direction=\(packet.direction.rawValue)")
        return parts.joined(separator: " ")
    }

    /// The trailer: `packets=100 matched=140 lost_ring_full=0 lost_slow_client=0 stopped="count reached (100 packets)"`.
    func summary(counts: CaptureSlots.Counts, stoppedBy reason: String) -> String {
        let (written, slow) = state.withLockedValue { ($0.written, $0.droppedForSlowClient) }
        return "packets=\(written) matched=\(counts.matched) lost_ring_full=\(counts.lost) lost_slow_client=\(slow) stopped=\"\(reason)\""
    }

    var description: String {
        var parts: [String] = ["slot \(slot)"]
        if let vip = filter.vip { parts.append("vip \(vip)") }
        if let real = filter.real { parts.append("real \(real)") }
        if !filter.outcomes.isEmpty { parts.append("outcome \(filter.outcomes.map(\.name).sorted().joined(separator: ","))") }
        parts.append("\(filter.count) packets or \(filter.seconds) s")
        return parts.joined(separator: " ")
    }
}
