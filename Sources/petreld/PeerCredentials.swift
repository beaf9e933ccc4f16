import Glibc
import NIOCore

/// Who is at the other end of an accepted unix-socket connection (SO_PEERCRED).
struct PeerCredentials: Sendable {
    var pid: Int32
    var uid: UInt32
    var gid: UInt32

    /// SO_PEERCRED, which Swift's Glibc module does not export.
    private static let option = NIOBSDSocket.Option(rawValue: 17)

    /// Reads the peer's credentials from an accepted unix-socket channel.
    static func of(_ channel: Channel) -> EventLoopFuture<PeerCredentials> {
        guard let provider = channel as? SocketOptionProvider else {
            return channel.eventLoop.makeFailedFuture(ChannelError.operationUnsupported)
        }
        // The kernel fills a struct ucred { pid_t pid; uid_t uid; gid_t gid; }, laid out like this struct.
        return provider.unsafeGetSocketOption(level: .socket, name: option)
    }

    /// Root and petreld's own user may use the admin API.
    var mayAdminister: Bool { uid == 0 || uid == geteuid() }
}
