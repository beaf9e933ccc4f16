import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import PetrelAdmin

/// How a responder answers: one whole response, or a head now and a body
/// written as it comes (`stream`). Either is called once, from any thread.
struct HTTPReply: Sendable {
    fileprivate let whole: @Sendable (HTTPResponse) -> Void
    fileprivate let streamStarter: @Sendable (_ status: Int, _ contentType: String, _ headers: [String: String]) -> HTTPBodyStream?

    init(whole: @escaping @Sendable (HTTPResponse) -> Void,
         stream: @escaping @Sendable (_ status: Int, _ contentType: String, _ headers: [String: String]) -> HTTPBodyStream?) {
        self.whole = whole
        self.streamStarter = stream
    }

    /// Answers with one whole response.
    func callAsFunction(_ response: HTTPResponse) { whole(response) }

    /// Sends the head (chunked transfer encoding) and returns the body's stream, or nil
    /// when the client is already gone. The stream lives until `finish`, the client
    /// disconnecting or the listener stopping, whichever comes first.
    func stream(status: Int = 200, contentType: String, headers: [String: String] = [:]) -> HTTPBodyStream? {
        streamStarter(status, contentType, headers)
    }
}

/// The body of a streamed answer: chunks written from any thread, in order, with
/// bounded buffering. A chunk that would push the bytes written but not yet taken
/// by the client over `maxBufferedBytes` is dropped whole and counted: a slow
/// client costs petreld at most that much memory, never more.
final class HTTPBodyStream: Sendable {
    /// Why a stream ended.
    enum End: Sendable, Equatable {
        /// The producer called `finish` (its limit was reached, or it failed).
        case finished
        /// The client closed the connection.
        case clientGone
        /// petreld is stopping (its listener closed the stream).
        case serverStopping
    }

    private struct State {
        var buffered = 0
        var dropped = 0
        var droppedBytes = 0
        var end: End?
        var onEnd: [@Sendable (End) -> Void] = []
    }

    let channel: Channel
    let maxBufferedBytes: Int
    private let closeDeadline: TimeAmount
    private let state = NIOLockedValueBox(State())

    /// `closeDeadline`: once the stream ends, how long the client has to take what is still buffered.
    init(channel: Channel, maxBufferedBytes: Int, closeDeadline: TimeAmount) {
        self.channel = channel
        self.maxBufferedBytes = maxBufferedBytes
        self.closeDeadline = closeDeadline
    }

    /// Chunks dropped because the client was slow (and their bytes).
    var dropped: (chunks: Int, bytes: Int) { state.withLockedValue { ($0.dropped, $0.droppedBytes) } }

    /// Set once the stream has ended.
    var end: End? { state.withLockedValue { $0.end } }

    /// Queues one chunk. False when the stream has ended or the chunk was dropped (counted in `dropped`).
    @discardableResult
    func write(_ bytes: Data) -> Bool {
        guard !bytes.isEmpty else { return true }
        let accepted = state.withLockedValue { state -> Bool in
            guard state.end == nil else { return false }
            guard state.buffered + bytes.count <= maxBufferedBytes else {
                state.dropped += 1
                state.droppedBytes += bytes.count
                return false
            }
            state.buffered += bytes.count
            return true
        }
        guard accepted else { return false }
        let channel = self.channel
        let count = bytes.count
        channel.eventLoop.execute {
            let buffer = channel.allocator.buffer(bytes: bytes)
            channel.writeAndFlush(HTTPServerResponsePart.body(.byteBuffer(buffer))).whenComplete { [self] _ in
                state.withLockedValue { $0.buffered -= count }
            }
        }
        return true
    }

    /// Ends the body (with trailers, e.g. a summary) and closes the connection once the client took it.
    func finish(trailers: [String: String] = [:]) {
        close(.finished, trailers: trailers)
    }

    /// Runs `body` once when the stream ends (at once if it has ended already), on an unspecified thread.
    func onEnd(_ body: @escaping @Sendable (End) -> Void) {
        let ended: End? = state.withLockedValue { state in
            if state.end == nil { state.onEnd.append(body) }
            return state.end
        }
        if let ended { body(ended) }
    }

    /// Ends the stream for `reason`; the first call wins. The client gets the last chunk
    /// (and trailers) unless it is gone; the connection closes after at most `closeDeadline`.
    func close(_ reason: End, trailers: [String: String] = [:]) {
        let callbacks: [@Sendable (End) -> Void]? = state.withLockedValue { state in
            guard state.end == nil else { return nil }
            state.end = reason
            defer { state.onEnd = [] }
            return state.onEnd
        }
        guard let callbacks else { return }
        let channel = self.channel
        let closeDeadline = self.closeDeadline
        if reason != .clientGone {
            channel.eventLoop.execute {
                var headers: HTTPHeaders?
                if !trailers.isEmpty {
                    headers = HTTPHeaders(trailers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
                }
                channel.writeAndFlush(HTTPServerResponsePart.end(headers)).whenComplete { _ in channel.close(promise: nil) }
                // A client that stopped reading does not hold the connection open.
                channel.eventLoop.scheduleTask(in: closeDeadline) { channel.close(promise: nil) }
            }
        }
        for callback in callbacks { callback(reason) }
    }
}

/// The streams open on one listener, so stopping the listener ends them.
final class OpenStreams: Sendable {
    private let streams = NIOLockedValueBox([ObjectIdentifier: HTTPBodyStream]())

    func add(_ stream: HTTPBodyStream) {
        streams.withLockedValue { $0[ObjectIdentifier(stream)] = stream }
        stream.onEnd { [weak self] _ in _ = self?.streams.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(stream)) } }
    }

    var count: Int { streams.withLockedValue { $0.count } }

    /// Ends every open stream (petreld is stopping) and waits up to `grace` for their connections to close.
    func closeAll(grace: TimeAmount) {
        let open = streams.withLockedValue { Array($0.values) }
        for stream in open { stream.close(.serverStopping, trailers: ["Petrel-Stream-End": "petreld is stopping"]) }
        let deadline = NIODeadline.now() + grace
        for stream in open { _ = try? stream.channel.closeFuture.wait(timeoutAt: deadline) }
    }
}

private extension EventLoopFuture {
    /// Waits until the future completes or the deadline passes (whichever is first).
    func wait(timeoutAt deadline: NIODeadline) throws {
        let semaphore = DispatchSemaphore(value: 0)
        whenComplete { _ in semaphore.signal() }
        let nanoseconds = max(0, deadline.uptimeNanoseconds - min(deadline.uptimeNanoseconds, NIODeadline.now().uptimeNanoseconds))
        _ = semaphore.wait(timeout: .now() + .nanoseconds(Int(nanoseconds)))
    }
}
