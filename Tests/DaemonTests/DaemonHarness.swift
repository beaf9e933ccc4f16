import Foundation
import Glibc
import Synchronization

/// A petreld running in a network namespace of its own, with a veth pair
/// (veth0 carries the balancer in generic mode) and a private bpffs for its pins.
/// `stop()` removes everything; call it from a `defer`.
final class DaemonHarness {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Harnesses are made from tests running in parallel: the counter is shared.
    private static let counter = Mutex(0)
    let namespace: String
    let directory: String
    var configPath: String { directory + "/petrel.yaml" }
    var socketPath: String { directory + "/run/admin.sock" }
    var pinPath: String { directory + "/bpf/petrel" }
    private(set) var daemon: Process?
    /// petreld's pid (`ip netns exec` execs it in place).
    var daemonPID: Int32? { daemon.map(\.processIdentifier) }
    var daemonLog: String { (try? String(contentsOfFile: directory + "/petreld.log", encoding: .utf8)) ?? "" }

    /// Where `petreld` and `petrel` were built: next to the test bundle.
    static let binaries: String = {
        if let dir = ProcessInfo.processInfo.environment["PETREL_BIN_DIR"] { return dir }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = (exe as NSString).deletingLastPathComponent
        while !dir.isEmpty, dir != "/", !FileManager.default.fileExists(atPath: dir + "/petreld") {
            dir = (dir as NSString).deletingLastPathComponent
        }
        return dir
    }()

    init() throws {
        let number = DaemonHarness.counter.withLock { count in
            count += 1
            return count
        }
        namespace = "pd\(getpid())x\(number)"
        directory = "/tmp/\(namespace)"
        try FileManager.default.createDirectory(atPath: directory + "/bpf", withIntermediateDirectories: true)
        try run("/usr/sbin/ip", ["netns", "add", namespace])
        try inNamespace(["ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1"])
        try inNamespace(["ip", "addr", "add", "10.9.0.1/24", "dev", "veth0"])
        try inNamespace(["ip", "addr", "add", "10.9.0.2/24", "dev", "veth1"])
        for link in ["lo", "veth0", "veth1"] { try inNamespace(["ip", "link", "set", link, "up"]) }
        // `ip netns exec` remounts /sys, so pins live on a bpffs of our own that every run sees.
        try run("/usr/bin/mount", ["-t", "bpf", "bpf", directory + "/bpf"])
    }

    /// The config every test starts from; `extraVips` is appended YAML.
    func writeConfig(weight: Int = 1, extraVips: String = "", broken: Bool = false) throws {
        var text = """
        interface: veth0
        attach_mode: generic
        next_hop:
          mac: "02:00:00:00:02:01"
        ring_size: 1021
        pin_path: \(pinPath)
        admin:
          socket: \(socketPath)
        metrics:
          listen: 127.0.0.1:9181
        vips:
          - address: 198.18.100.1
            port: 53
            protocol: udp
            reals:
              - address: 198.18.3.11
                weight: \(weight)
              - address: 198.18.3.12

        """
        text += extraVips
        if broken {
            text += """
              - address: 198.18.100.300
                port: 70000
                protocol: sctp

            """
        }
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// Replaces the config file by rename, dated a few seconds back: a file written
    /// earlier, so a reload reads it at once instead of waiting for it to settle.
    func installConfig(_ text: String) throws {
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
        let earlier = timespec(tv_sec: time(nil) - 5, tv_nsec: 0)
        _ = [earlier, earlier].withUnsafeBufferPointer { utimensat(AT_FDCWD, configPath, $0.baseAddress, 0) }
    }

    /// Starts petreld and waits (bounded) until it answers on its socket.
    /// `wrapper` runs petreld (like `setpriv ... --`), inside the namespace.
    func start(keepForwarding: Bool = false, wrapper: [String] = [], arguments: [String] = []) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", namespace] + wrapper + [DaemonHarness.binaries + "/petreld", "--config", configPath]
            + (keepForwarding ? ["--keep-forwarding-on-exit"] : []) + arguments
        if !FileManager.default.fileExists(atPath: directory + "/petreld.log") {
            _ = FileManager.default.createFile(atPath: directory + "/petreld.log", contents: nil)
        }
        let log = FileHandle(forWritingAtPath: directory + "/petreld.log")!
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        daemon = process
        try waitUntil("petreld answers on \(socketPath)", timeout: 20) {
            guard process.isRunning else { throw Failure(description: "petreld exited with \(process.terminationStatus):\n\(daemonLog)") }
            return petrel(["status"]).status == 0
        }
    }

    func signal(_ sig: Int32) {
        if let daemon, daemon.isRunning { kill(daemon.processIdentifier, sig) }
    }

    /// Waits (bounded) for petreld to exit; returns its exit status.
    @discardableResult
    func waitForExit(timeout: TimeInterval = 10) throws -> Int32 {
        guard let daemon else { return 0 }
        try waitUntil("petreld exits", timeout: timeout) { !daemon.isRunning }
        return daemon.terminationStatus
    }

    /// Runs the CLI against this daemon's socket.
    func petrel(_ arguments: [String]) -> (status: Int32, output: String) {
        (try? capture(DaemonHarness.binaries + "/petrel", ["--socket", socketPath] + arguments)) ?? (-1, "")
    }

    /// Sends `count` UDP datagrams from veth1 towards the VIP through veth0 (where the balancer sees them).
    func sendTraffic(count: Int) throws {
        let script = DaemonHarness.frameScript + """
        for i in range(\(count)):
            s.send(frame)
        """
        let result = try capture("/usr/sbin/ip", ["netns", "exec", namespace, "python3", "-c", script])
        guard result.status == 0 else { throw Failure(description: "sending traffic failed: \(result.output)") }
    }

    /// Starts sending `rate` datagrams a second (on a fixed schedule, so the average
    /// holds even if the machine is busy) for `seconds`, in the background.
    func startTraffic(rate: Int, seconds: Int) throws -> Process {
        let script = DaemonHarness.frameScript + """
        import time
        start = time.monotonic()
        for i in range(\(rate * seconds)):
            delay = start + i / \(rate) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            s.send(frame)
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", namespace, "python3", "-c", script]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    /// Python that builds `frame` (a UDP datagram 198.18.1.2:40000 -> 198.18.100.1:53 from
    /// veth1 to veth0) and a raw socket `s` on veth1: both veth ends are in one namespace,
    /// so the IP stack would not use the link.
    private static let frameScript = """
        import socket, struct
        def csum(b):
            s = sum(struct.unpack("!10H", b))
            s = (s >> 16) + (s & 0xffff); s += s >> 16
            return (~s) & 0xffff
        dst = bytes.fromhex(open("/sys/class/net/veth0/address").read().strip().replace(":", ""))
        src = bytes.fromhex(open("/sys/class/net/veth1/address").read().strip().replace(":", ""))
        payload = b"petrel"
        udp = struct.pack("!HHHH", 40000, 53, 8 + len(payload), 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                         socket.inet_aton("198.18.1.2"), socket.inet_aton("198.18.100.1"))
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        frame = dst + src + b"\\x08\\x00" + ip + udp
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind(("veth1", 0))

        """

    func inNamespaceOutput(_ arguments: [String]) throws -> String {
        try capture("/usr/sbin/ip", ["netns", "exec", namespace] + arguments).output
    }

    /// Kills petreld and removes the namespace, the bpffs mount and the directory.
    func stop() {
        if let daemon, daemon.isRunning {
            kill(daemon.processIdentifier, SIGKILL)
            daemon.waitUntilExit()
        }
        _ = try? capture("/usr/bin/umount", [directory + "/bpf"])
        _ = try? capture("/usr/sbin/ip", ["netns", "del", namespace])
        try? FileManager.default.removeItem(atPath: directory)
    }

    // MARK: Helpers

    private func inNamespace(_ arguments: [String]) throws {
        try run("/usr/sbin/ip", ["netns", "exec", namespace] + arguments)
    }

    private func run(_ tool: String, _ arguments: [String]) throws {
        let result = try capture(tool, arguments)
        guard result.status == 0 else { throw Failure(description: "\(tool) \(arguments.joined(separator: " ")): \(result.output)") }
    }

    func capture(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        try DaemonHarness.captureStatic(tool, arguments)
    }

    /// Polls `condition` every 50 ms until it holds or `timeout` passes.
    func waitUntil(_ what: String, timeout: TimeInterval, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return }
            usleep(50_000)
        }
        throw Failure(description: "timed out after \(timeout) s waiting until \(what)\n--- petreld log ---\n\(daemonLog)")
    }
}
