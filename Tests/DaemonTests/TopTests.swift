import Foundation
import Glibc
import Testing

/// `petrel top` in a real terminal: tmux runs it against a petreld with traffic,
/// keys are typed with send-keys and the screen is read with capture-pane. Needs root.
@Suite(.serialized)
struct TopTests {
    @Test func topShowsRatesSortsResizesAndQuitsCleanly() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig(extraVips: """
              - address: 198.18.100.2
                port: 80
                protocol: tcp
                reals:
                  - address: 198.18.3.13

            """)
        try harness.start()
        let rate = 300
        let sender = try harness.startTraffic(rate: rate, seconds: 20)
        defer { if sender.isRunning { sender.terminate() } }

        let tmux = try Tmux(harness: harness, columns: 80, rows: 24)
        defer { tmux.kill() }

        // 80x24: every line fits, the keys' line is the last, the VIP under traffic shows its rate.
        var screen: [String] = []
        try harness.waitUntil("top shows the VIP at about \(rate) packets/s", timeout: 10) {
            screen = try tmux.screen()
            return TopTests.rate(of: "udp/198.18.100.1:53", in: screen).map { abs($0 - Double(rate)) <= Double(rate) * 0.25 } ?? false
        }
        #expect(screen.count == 24)
        #expect(screen.allSatisfy { $0.count <= 80 })
        #expect(screen[0].hasPrefix("petrel top: \(harness.socketPath)"))
        #expect(screen[23].hasPrefix("q quit  sort: [p] packets"))
        #expect(screen.contains { $0.hasPrefix("drops/s: none") })
        #expect(screen.contains { $0.contains("new conns") && $0.contains("table hits") })
        let realsShown = screen.filter { $0.hasPrefix("198.18.3.1") }
        #expect(realsShown.count == 3, "every real: \(screen.joined(separator: "\n"))")
        let idle = try #require(screen.firstIndex { $0.hasPrefix("tcp/198.18.100.2:80") })
        let busy = try #require(screen.firstIndex { $0.hasPrefix("udp/198.18.100.1:53") })
        #expect(busy < idle, "sorted by packets/s: the busy VIP first")

        // n: sort by name (tcp before udp).
        try tmux.keys("n")
        try harness.waitUntil("sorted by name", timeout: 5) {
            screen = try tmux.screen()
            guard screen.last?.contains("[n] name") == true,
                  let tcp = screen.firstIndex(where: { $0.hasPrefix("tcp/198.18.100.2:80") }),
                  let udp = screen.firstIndex(where: { $0.hasPrefix("udp/198.18.100.1:53") }) else { return false }
            return tcp < udp
        }

        // The view follows the terminal: smaller, then larger.
        try tmux.resize(columns: 60, rows: 12)
        try harness.waitUntil("redrawn at 60x12", timeout: 5) {
            screen = try tmux.screen()
            return screen.count == 12 && screen[0].hasPrefix("petrel top") && screen[11].hasPrefix("q quit") && screen.allSatisfy { $0.count <= 60 }
        }
        #expect(screen.contains { $0.hasPrefix("... ") && $0.hasSuffix(" more") }, "rows that do not fit are counted: \(screen)")
        // Too small for the tables: the summary and the keys' line still fit.
        try tmux.resize(columns: 40, rows: 6)
        try harness.waitUntil("redrawn at 40x6", timeout: 5) {
            screen = try tmux.screen()
            return screen.count == 6 && screen[0].hasPrefix("petrel top") && screen[5].hasPrefix("q quit")
        }
        try tmux.resize(columns: 120, rows: 40)
        try harness.waitUntil("redrawn at 120x40", timeout: 5) {
            screen = try tmux.screen()
            return screen.count == 40 && screen[0].hasPrefix("petrel top") && screen[39].hasPrefix("q quit")
        }

        // q quits with status 0 and gives the terminal back as it was.
        try tmux.keys("q")
        try tmux.expectExitedCleanly(harness)
    }

    @Test func ctrlCQuitsAndRestoresTheTerminal() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start()
        let tmux = try Tmux(harness: harness, columns: 80, rows: 24)
        defer { tmux.kill() }
        try harness.waitUntil("top draws", timeout: 10) { try tmux.screen().last?.hasPrefix("q quit") == true }
        try tmux.keys("C-c")
        try tmux.expectExitedCleanly(harness)
    }

    @Test func topRefusesToRunWithoutATerminal() throws {
        let result = try DaemonHarness.captureStatic(DaemonHarness.binaries + "/petrel", ["--socket", "/tmp/no-such.sock", "top"])
        #expect(result.status != 0)
        #expect(result.output.contains("top: needs a terminal"))
    }

    /// The PKT/S column of the row starting with `name`.
    static func rate(of name: String, in screen: [String]) -> Double? {
        guard let line = screen.first(where: { $0.hasPrefix(name + " ") }) else { return nil }
        let cells = line.dropFirst(name.count).split(separator: " ")
        guard let first = cells.first else { return nil }
        if first.hasSuffix("k") { return Double(first.dropLast()).map { $0 * 1000 } }
        return Double(first)
    }
}

/// A tmux server of the test's own (its own socket name), running `petrel top` in a
/// detached session of a given size; the pane stays after top exits so its exit can be checked.
final class Tmux {
    let server: String
    let harness: DaemonHarness
    var sttyAfter: String { harness.directory + "/stty-after" }

    init(harness: DaemonHarness, columns: Int, rows: Int) throws {
        self.harness = harness
        server = "petrel-top-\(getpid())-\(harness.namespace)"
        // After top exits, the shell records the terminal's settings and top's exit status.
        let command = "\(DaemonHarness.binaries)/petrel --socket \(harness.socketPath) top; "
            + "echo \"exit=$?\" > \(sttyAfter); stty -a >> \(sttyAfter); sleep 30"
        // The tmux server forks off and would keep every descriptor it inherits, among them the
        // one Foundation watches to see a child exit: python starts the client with only 0-2 open.
        let start = try DaemonHarness.captureStatic("/usr/bin/python3", [
            "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))",
            "/usr/bin/tmux", "-L", server, "new-session", "-d", "-s", "top", "-x", "\(columns)", "-y", "\(rows)", "sh", "-c", command,
        ])
        guard start.status == 0 else { throw DaemonHarness.Failure(description: "tmux new-session failed: \(start.output)") }
        let server = try run(["display-message", "-p", "#{pid} #{socket_path}"]).trimmingCharacters(in: .whitespacesAndNewlines)
        serverPID = Int32(server.prefix { $0 != " " })
        socketPath = String(server.drop { $0 != " " }.dropFirst())
    }

    /// The server's process and socket file, removed by `kill()` whatever state the session is in.
    private var serverPID: Int32?
    private var socketPath: String?

    func screen() throws -> [String] {
        let output = try run(["capture-pane", "-p", "-t", "top"])
        var lines = output.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    func keys(_ keys: String) throws { try run(["send-keys", "-t", "top", keys]) }

    func resize(columns: Int, rows: Int) throws {
        try run(["resize-window", "-t", "top", "-x", "\(columns)", "-y", "\(rows)"])
    }

    func display(_ format: String) throws -> String {
        try run(["display-message", "-p", "-t", "top", format]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// top exited 0, left the alternate screen, showed the cursor and restored the line discipline.
    func expectExitedCleanly(_ harness: DaemonHarness) throws {
        try harness.waitUntil("top exits and the shell records the terminal", timeout: 5) {
            ((try? String(contentsOfFile: sttyAfter, encoding: .utf8)) ?? "").contains("icanon")
        }
        let after = try String(contentsOfFile: sttyAfter, encoding: .utf8)
        #expect(after.hasPrefix("exit=0"))
        let flags = Set(after.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == ";" }).map(String.init))
        for flag in ["icanon", "echo", "isig", "icrnl", "ixon"] {
            #expect(flags.contains(flag) && !flags.contains("-" + flag), "\(flag) restored: \(after)")
        }
        #expect(try display("#{alternate_on} #{cursor_flag}") == "0 1", "main screen and a visible cursor")
    }

    func kill() {
        _ = try? run(["kill-server"])
        // kill-server returns before the server has gone; it is given a second, then killed.
        if let serverPID, serverPID > 1 {
            for _ in 0..<20 where Glibc.kill(serverPID, 0) == 0 { usleep(50_000) }
            if Glibc.kill(serverPID, 0) == 0 { Glibc.kill(serverPID, SIGKILL) }
        }
        if let socketPath, !socketPath.isEmpty { unlink(socketPath) }
    }

    @discardableResult
    private func run(_ arguments: [String]) throws -> String {
        let result = try DaemonHarness.captureStatic("/usr/bin/tmux", ["-L", server] + arguments)
        guard result.status == 0 else { throw DaemonHarness.Failure(description: "tmux \(arguments.joined(separator: " ")): \(result.output)") }
        return result.output
    }
}
