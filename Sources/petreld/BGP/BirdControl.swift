import Foundation
import Glibc
import PetrelConfig

/// BIRD's control socket: one command, one reply. The protocol is BIRD's own
/// (the one `birdc` speaks): every reply line starts with a four-digit code,
/// `-` after the code means more lines follow, a space means the reply ends;
/// codes from 8000 on are errors.
struct BirdControl {
    let socketPath: String
    /// How long one command may take, connect included.
    var timeout: TimeInterval = 5

    struct Reply {
        /// (code, text) per line; continuation lines carry the code of the line they continue.
        var lines: [(code: Int, text: String)]
        var failed: Bool { lines.contains { $0.code >= 8000 } }
        var errorText: String { lines.filter { $0.code >= 8000 }.map(\.text).joined(separator: "; ") }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// True when a BIRD answers on the socket.
    var isAnswering: Bool { (try? command("show status")) != nil }

    func command(_ text: String) throws -> Reply {
        let fd = try connect()
        defer { close(fd) }
        _ = try readReply(fd)  // the greeting: 0001 BIRD x.y.z ready.
        let line = Array((text + "\n").utf8)
        guard line.withUnsafeBufferPointer({ write(fd, $0.baseAddress, $0.count) }) == line.count else {
            throw Failure(description: "cannot write to BIRD's control socket \(socketPath): \(String(cString: strerror(errno)))")
        }
        return try readReply(fd)
    }

    private func connect() throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socketPath.utf8)
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw Failure(description: "control socket path \(socketPath) is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (i, byte) in path.enumerated() { buffer[i] = byte }
        }
        var time = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "no BIRD answers on \(socketPath): \(reason)")
        }
        return fd
    }

    /// Reads lines until one whose code is followed by a space. Bounded: a reply
    /// larger than 4 MiB is refused rather than buffered.
    private func readReply(_ fd: Int32) throws -> Reply {
        var buffer: [UInt8] = []
        var reply = Reply(lines: [])
        var lastCode = 0
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                let bytes = Array(line.utf8)
                if bytes.count >= 5, let code = Int(String(decoding: bytes[0..<4], as: UTF8.self)) {
                    lastCode = code
                    reply.lines.append((code, String(decoding: bytes[5...], as: UTF8.self)))
                    if bytes[4] == UInt8(ascii: " ") { return reply }
                } else if bytes.count == 4, let code = Int(line) {
                    reply.lines.append((code, ""))
                    return reply
                } else {
                    reply.lines.append((lastCode, line.hasPrefix(" ") ? String(line.dropFirst()) : line))
                }
            }
            let count = chunk.withUnsafeMutableBufferPointer { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else {
                throw Failure(description: count == 0 ? "BIRD closed its control socket mid-reply"
                                                      : "reading BIRD's reply: \(String(cString: strerror(errno)))")
            }
            buffer += chunk[0..<count]
            guard buffer.count < 4 << 20 else { throw Failure(description: "BIRD's reply is larger than 4 MiB") }
        }
    }
}

/// Starting and stopping the BIRD daemon petreld drives.
struct BirdDaemon {
    let settings: BGPConfiguration.Bird
    var control: BirdControl { BirdControl(socketPath: settings.controlSocket) }

    /// Starts BIRD with the config already written, unless one already answers on the
    /// control socket (left by an earlier petreld); then that one is reconfigured.
    /// BIRD daemonizes itself: its life follows the data plane's, not this process's
    /// (a petreld crash leaves the program attached and forwarding, so the routes stay true).
    func ensureRunning() throws {
        if control.isAnswering { return }
        try? FileManager.default.createDirectory(atPath: (settings.controlSocket as NSString).deletingLastPathComponent,
                                                 withIntermediateDirectories: true)
        // BIRD's start-up errors go to a file, not a pipe: the daemonized BIRD keeps its
        // inherited stderr, so a pipe would never reach its end.
        let errorsPath = settings.configFile + ".start-errors"
        let status = try Self.run(settings.binary, ["-c", settings.configFile, "-s", settings.controlSocket], stderrPath: errorsPath)
        guard status == 0 else {
            let output = FileManager.default.contents(atPath: errorsPath) ?? Data()
            throw BirdControl.Failure(description: "BIRD refused to start (status \(status)): "
                + String(decoding: output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
        for _ in 0..<100 {
            if control.isAnswering { return }
            usleep(50_000)
        }
        throw BirdControl.Failure(description: "BIRD started but does not answer on \(settings.controlSocket)")
    }

    /// Runs a program to its exit (BIRD's parent exits once the daemon is forked).
    /// posix_spawn and waitpid directly: the spawn must not depend on a run loop.
    private static func run(_ path: String, _ arguments: [String], stderrPath: String) throws -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard spawned == 0 else {
            throw BirdControl.Failure(description: "cannot run BIRD (bgp.bird.binary \(path)): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // Exited normally: the exit code; killed: 128 + the signal, as a shell reports it.
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Makes BIRD read `configFile` again; unchanged sessions stay up.
    func reconfigure() throws {
        let reply = try control.command("configure \"\(settings.configFile)\"")
        if reply.failed { throw BirdControl.Failure(description: "BIRD refused its config: \(reply.errorText)") }
    }

    /// Stops BIRD: its sessions close, so the routers drop whatever was still announced.
    func stop() throws {
        _ = try control.command("down")
    }

    /// Each BGP protocol's session state, by protocol name (`Established`, `Active`, `Connect`...).
    func sessionStates() throws -> [String: String] {
        let reply = try control.command("show protocols")
        var states: [String: String] = [:]
        for line in reply.lines where line.code == 1002 {
            let columns = line.text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard columns.count >= 4, columns[1] == "BGP" else { continue }
            // Name Proto Table State Since Info: Info starts with the BGP state when there is one.
            let bgpStates = ["Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established", "Close"]
            states[columns[0]] = columns.dropFirst(4).first(where: bgpStates.contains) ?? (columns[3] == "down" ? "Down" : "Idle")
        }
        return states
    }
}
