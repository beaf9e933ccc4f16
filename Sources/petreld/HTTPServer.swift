import Foundation
import Glibc
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// One HTTP/1.1 listener (a unix socket or a loopback TCP address) on SwiftNIO:
/// every connection lives on the event loop (no thread per client), within
/// `ServerLimits`. On the unix socket, only root and petreld's own user are
/// answered (SO_PEERCRED), even if the socket's mode was loosened.
final class HTTPServer: Sendable {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Where a listener listens.
    enum Endpoint: Sendable {
        case unix(path: String)
        case tcp(host: String, port: Int)
    }

    /// `unix:/run/petrel/admin.sock` or `tcp:127.0.0.1:9180`, for logs.
    let name: String
    private let channel: Channel
    private let unixPath: String?
    private let connections: ConnectionCount
    private let streams: OpenStreams
    private let limits: ServerLimits

    /// Binds and starts serving; `field` names the config setting in errors.
    init(_ endpoint: Endpoint, field: String, group: EventLoopGroup, limits: ServerLimits, responder: @escaping HTTPResponder) throws {
        let connections = ConnectionCount()
        let streams = OpenStreams()
        let checksPeer: Bool
        switch endpoint {
        case .unix(let path):
            name = "unix:\(path)"
            unixPath = path
            checksPeer = true
            try HTTPServer.prepareSocketPath(path, field: field)
        case let .tcp(host, port):
            name = host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
            unixPath = nil
            checksPeer = false
        }
        let bootstrap = ServerBootstrap(group: group)
            // A burst of clients waits in the accept queue rather than having its SYNs dropped.
            .serverChannelOption(.backlog, value: 4_096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                guard connections.enter(limit: limits.maxConnections) else {
                    // Over the cap: closed at once, costing nothing further.
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in connections.leave() }
                guard checksPeer else { return HTTPServer.configure(channel, limits: limits, refusal: nil, streams: streams, responder: responder) }
                return PeerCredentials.of(channel).flatMap { peer in
                    let refusal = peer.mayAdminister ? nil : "the admin API serves root and petreld's own user only (peer uid \(peer.uid))"
                    return HTTPServer.configure(channel, limits: limits, refusal: refusal, streams: streams, responder: responder)
                }
            }
            .childChannelOption(.maxMessagesPerRead, value: 4)
        do {
            switch endpoint {
            case .unix(let path):
                // The socket is created with the umask applied; restrict it before anyone can connect.
                let previous = umask(0o177)
                defer { umask(previous) }
                channel = try bootstrap.bind(unixDomainSocketPath: path).wait()
                chmod(path, 0o600)
            case let .tcp(host, port):
                channel = try bootstrap.bind(host: host, port: port).wait()
            }
        } catch {
            throw Failure(description: "\(field): cannot listen on \(name): \(error)")
        }
        self.connections = connections
        self.streams = streams
        self.limits = limits
    }

    private static func configure(_ channel: Channel, limits: ServerLimits, refusal: String?, streams: OpenStreams,
                                  responder: @escaping HTTPResponder) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            var decoderLimits = NIOHTTPDecoderLimitConfiguration()
            decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
            decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(IdleStateHandler(readTimeout: limits.idleTimeout))
            try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false,
                                                     withEncoderConfiguration: .init(), withDecoderLimitConfiguration: decoderLimits)
            try pipeline.addHandler(HTTPConnectionHandler(limits: limits, refusal: refusal, streams: streams, responder: responder))
        }
    }

    /// Open connections now.
    var openConnections: Int { connections.value }

    /// Streamed answers being written now.
    var openStreams: Int { streams.count }

    /// Stops accepting, ends the open streams (their clients get the last chunk); removes the unix socket file.
    func stop() {
        try? channel.close().wait()
        streams.closeAll(grace: limits.streamStopGrace)
        if let unixPath { unlink(unixPath) }
    }

    /// Creates the socket's directory and removes a stale socket, refusing to remove anything else.
    private static func prepareSocketPath(_ path: String, field: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw Failure(description: "\(field): \(path) exists and is not a socket; not removing it")
        }
        unlink(path)  // stale: left by a petreld that did not exit cleanly
    }
}

/// Open connections of one listener, across event loops.
private final class ConnectionCount: Sendable {
    private let count = NIOLockedValueBox(0)

    var value: Int { count.withLockedValue { $0 } }

    func enter(limit: Int) -> Bool {
        count.withLockedValue { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func leave() { count.withLockedValue { $0 -= 1 } }
}
