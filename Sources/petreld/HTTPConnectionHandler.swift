import Foundation
import NIOCore
import NIOHTTP1
import PetrelAdmin

/// The seam between the transport and the admin API's routes: a whole request
/// in, one answer out through `reply` (whole, or streamed). Called off the event
/// loop's work: the responder decides where the work runs.
typealias HTTPResponder = @Sendable (_ request: HTTPRequest, _ reply: HTTPReply) -> Void

/// One connection: collects one request within the limits, hands it to the
/// responder, writes the answer and closes. Anything outside the limits is
/// answered with a 4xx JSON error and the connection closed. A streamed answer
/// has no deadline: it lasts until its producer finishes, the client goes or
/// the listener stops.
final class HTTPConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case waitingForHead
        case receivingBody(HTTPRequestHead, ByteBuffer)
        /// The responder has the request; the connection waits for its answer.
        case responding
        /// A streamed answer is being written.
        case streaming(HTTPBodyStream)
        /// The answer (or a refusal) is written; the connection closes.
        case done
    }

    private let limits: ServerLimits
    private let responder: HTTPResponder
    /// Set when the peer may not use this listener: every request gets this 403.
    private let refusal: String?
    private let streams: OpenStreams
    private var state = State.waitingForHead
    private var deadline: Scheduled<Void>?

    init(limits: ServerLimits, refusal: String?, streams: OpenStreams, responder: @escaping HTTPResponder) {
        self.limits = limits
        self.refusal = refusal
        self.streams = streams
        self.responder = responder
    }

    // MARK: Deadlines

    func handlerAdded(context: ChannelHandlerContext) {
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: limits.requestDeadline) {
            bound.value.handler.requestTimedOut(context: bound.value.context, after: "the request deadline")
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            requestTimedOut(context: context, after: "the idle timeout")
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func requestTimedOut(context: ChannelHandlerContext, after what: String) {
        switch state {
        case .waitingForHead, .receivingBody:
            let seconds = what == "the idle timeout" ? limits.idleTimeout : limits.requestDeadline
            reply(AdminAPI.error(408, "request not complete within \(what) (\(seconds.nanoseconds / 1_000_000_000) s)"), context: context)
        case .responding, .streaming, .done:
            break  // the request is in; a long reload may take longer than the deadline
        }
    }

    // MARK: Reading the request

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            guard case .waitingForHead = state else { return }
            if let refusal { return reply(AdminAPI.error(403, refusal), context: context) }
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > limits.maxBodyBytes {
                return reply(tooLarge, context: context)
            }
            state = .receivingBody(head, context.channel.allocator.buffer(capacity: 0))
        case .body(var chunk):
            guard case .receivingBody(let head, var body) = state else { return }
            guard body.readableBytes + chunk.readableBytes <= limits.maxBodyBytes else { return reply(tooLarge, context: context) }
            state = .done  // avoids a copy-on-write of the body while it grows
            body.writeBuffer(&chunk)
            state = .receivingBody(head, body)
        case .end:
            guard case .receivingBody(let head, let body) = state else { return }
            state = .responding
            deadline?.cancel()
            var headers: [String: String] = [:]
            for (name, value) in head.headers { headers[name.lowercased()] = value }
            let request = HTTPRequest(method: head.method.rawValue, target: head.uri, headers: headers, body: Data(body.readableBytesView))
            let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
            let eventLoop = context.eventLoop
            let channel = context.channel
            let limits = self.limits
            let reply = HTTPReply(whole: { response in
                eventLoop.execute { bound.value.handler.reply(response, context: bound.value.context) }
            }, stream: { status, contentType, headers in
                guard channel.isActive else { return nil }
                let stream = HTTPBodyStream(channel: channel, maxBufferedBytes: limits.maxStreamBufferBytes,
                                            closeDeadline: limits.responseDeadline)
                // Runs before any chunk the producer writes: the event loop keeps the order of its tasks.
                eventLoop.execute { bound.value.handler.beginStream(stream, status: status, contentType: contentType, headers: headers,
                                                                   context: bound.value.context) }
                return stream
            })
            responder(request, reply)
        }
    }

    private var tooLarge: HTTPResponse {
        AdminAPI.error(413, "request body larger than \(limits.maxBodyBytes) bytes")
    }

    /// A request the parser could not read (bad syntax, headers over the limit): 400 or 431, then close.
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let parserError = error as? HTTPParserError {
            switch state {
            case .waitingForHead, .receivingBody:
                if case .headerOverflow = parserError {
                    reply(AdminAPI.error(431, "request headers larger than \(limits.maxHeaderBytes) bytes"), context: context)
                } else {
                    reply(AdminAPI.error(400, "request: not valid HTTP/1.1 (\(parserError))"), context: context)
                }
                return
            case .done:
                return  // the rest of a refused request, being drained
            case .responding, .streaming:
                break
            }
        }
        context.close(promise: nil)
    }

    // MARK: Answering

    /// Writes the one answer of this connection and closes it once written (or when the client does not take it in time).
    /// An answer given before the whole request was read (403, 408, 413, 431, 400) closes only
    /// the sending half and reads on for `limits.linger`: closing a socket with unread bytes would
    /// reset the connection, and the client could lose the answer.
    private func reply(_ response: HTTPResponse, context: ChannelHandlerContext) {
        let early: Bool
        switch state {
        case .done, .streaming: return
        case .responding: early = false
        case .waitingForHead, .receivingBody: early = true
        }
        state = .done
        deadline?.cancel()
        guard context.channel.isActive else { return }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        headers.add(name: "Connection", value: "close")
        for (name, value) in response.headers.sorted(by: { $0.key < $1.key }) { headers.add(name: name, value: value) }
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
            channel.close(mode: early ? .output : .all, promise: nil)
        }
        deadline = context.eventLoop.scheduleTask(in: early ? limits.linger : limits.responseDeadline) { channel.close(promise: nil) }
    }

    /// Writes a streamed answer's head; the body follows through `stream`.
    private func beginStream(_ stream: HTTPBodyStream, status: Int, contentType: String, headers extra: [String: String],
                             context: ChannelHandlerContext) {
        guard case .responding = state, context.channel.isActive else { return stream.close(.clientGone) }
        state = .streaming(stream)
        streams.add(stream)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Connection", value: "close")
        for (name, value) in extra.sorted(by: { $0.key < $1.key }) { headers.add(name: name, value: value) }
        // No Content-Length: NIO's encoder sends the body with chunked transfer encoding.
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
        context.writeAndFlush(wrapOutboundOut(.head(head)), promise: nil)
    }

    /// The client went (or the connection broke): a stream's producer stops.
    func channelInactive(context: ChannelHandlerContext) {
        if case .streaming(let stream) = state {
            state = .done
            stream.close(.clientGone)
        }
        context.fireChannelInactive()
    }
}
