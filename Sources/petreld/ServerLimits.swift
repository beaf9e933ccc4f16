import NIOCore

/// What one client may cost petreld on any of its HTTP listeners (admin socket,
/// admin TCP, metrics). docs/operating.md lists them; this is their one definition.
struct ServerLimits: Sendable {
    /// Open connections per listener; a connection beyond it is closed at once.
    var maxConnections = 4_096
    /// The whole request (head and body) must arrive within this, or it gets 408.
    var requestDeadline: TimeAmount = .seconds(10)
    /// A connection that sends nothing for this long while its request is incomplete gets 408.
    var idleTimeout: TimeAmount = .seconds(5)
    /// The answer must be taken by the client within this once it is ready, or the connection is closed.
    var responseDeadline: TimeAmount = .seconds(10)
    /// After an answer given before the request was read whole, how long the rest is read and dropped.
    var linger: TimeAmount = .seconds(2)
    /// Request line and headers together; beyond it, 431.
    var maxHeaderBytes = 16 * 1024
    /// Request body; beyond it, 413. Admin requests are small JSON documents.
    var maxBodyBytes = 1 << 20
    /// A streamed answer's bytes written but not yet taken by its client; beyond it, chunks are dropped and counted.
    var maxStreamBufferBytes = 1 << 20
    /// On stopping, how long petreld waits for open streams to send their last chunk.
    var streamStopGrace: TimeAmount = .seconds(1)

    static let standard = ServerLimits()
}
