import Foundation
import Petrel
import Testing

/// petreld itself in the middle of real traffic: reloads that add, remove and
/// reweight VIPs and reals while connections are open, and a SIGKILL and
/// restart that established connections must not notice.
extension EndToEnd {
    @Suite("End to end: petreld under traffic", .serialized)
    struct DaemonTrafficTests {
        /// A second VIP the reals serve (on their loopback), added and removed by reloads.
        static let vipB = Plan.vip4in6

        /// The config file petreld runs with; `step` walks through the reloads.
        static func config(pinPath: String, socket: String, step: Int) -> String {
            // Step 0: VIP A with real1, real2. Step 1: real3 added, VIP B added.
            // Step 2: real1 reweighted to 3. Step 3: real3 and VIP B removed again.
            let realsA: [(String, Int)] = switch step {
            case 0: [("198.18.3.11", 1), ("198.18.3.12", 1)]
            case 1: [("198.18.3.11", 1), ("198.18.3.12", 1), ("198.18.3.13", 1)]
            case 2: [("198.18.3.11", 3), ("198.18.3.12", 1), ("198.18.3.13", 1)]
            default: [("198.18.3.11", 3), ("198.18.3.12", 1)]
            }
            var text = """
            interface: eth0
            next_hop:
              mac: "02:00:00:00:02:01"
            ring_size: 4093
            pin_path: \(pinPath)
            admin:
              socket: \(socket)
            vips:
              - address: 198.18.100.1
                port: 80
                protocol: tcp
                reals:

            """
            for (address, weight) in realsA { text += "          - {address: \(address), weight: \(weight)}\n" }
            if step == 1 || step == 2 {
                text += """
                  - address: \(vipB)
                    port: 80
                    protocol: tcp
                    reals:
                      - {address: 198.18.3.12}
                      - {address: 198.18.3.13}

                """
            }
            return text
        }

        /// petreld in the LB namespace, with its pins on a bpffs of the test's own
        /// (outside /sys, so a restarted petreld sees them).
        final class Daemon {
            let network: TestNetwork
            let directory: String
            var configPath: String { directory + "/petrel.yaml" }
            var socket: String { directory + "/admin.sock" }
            var pinPath: String { directory + "/bpf/petrel" }
            private(set) var process: Command.Running?

            static let binaries: String = {
                let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
                var dir = (exe as NSString).deletingLastPathComponent
                while dir.count > 1, !FileManager.default.fileExists(atPath: dir + "/petreld") {
                    dir = (dir as NSString).deletingLastPathComponent
                }
                return dir
            }()

            init(network: TestNetwork) throws {
                self.network = network
                directory = "/tmp/\(network.prefix)-petreld"
                try FileManager.default.createDirectory(atPath: directory + "/bpf", withIntermediateDirectories: true)
                try Command.run(["mount", "-t", "bpf", "bpf", directory + "/bpf"])
            }

            func write(step: Int) throws {
                try DaemonTrafficTests.config(pinPath: pinPath, socket: socket, step: step)
                    .write(toFile: configPath, atomically: true, encoding: .utf8)
            }

            /// Starts petreld and waits (at most 20 s) until it answers.
            func start() throws {
                process = try Command.Running(["ip", "netns", "exec", network.lbNamespace, Daemon.binaries + "/petreld", "--config", configPath])
                let deadline = Date().addingTimeInterval(20)
                while (try? petrel(["status"])) == nil {
                    guard Date() < deadline, process?.process.isRunning == true else {
                        throw Command.Failure(command: ["petreld"], status: -1, output: "petreld did not come up")
                    }
                    usleep(100_000)
                }
            }

            func kill9() { process?.stop() }

            /// petreld's pid (`ip netns exec` execs it in place).
            var processID: Int32? { process?.process.processIdentifier }

            @discardableResult
            func petrel(_ arguments: [String]) throws -> String {
                try Command.run([Daemon.binaries + "/petrel", "--socket", socket] + arguments)
            }

            func forwarded() throws -> UInt64 {
                let json = try petrel(["stats", "--json"])
                let stats = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
                let global = stats?["global"] as? [String: Any]
                return (global?["forward"] as? NSNumber)?.uint64Value ?? 0
            }

            func destroy() {
                process?.stop()
                _ = try? Command.run(["umount", directory + "/bpf"])
                try? FileManager.default.removeItem(atPath: directory)
            }
        }

        @Test("Reloads add, remove and reweight VIPs and reals under open connections: 0 failures")
        func reloadsUnderTraffic() throws {
            try withTestNetwork(vips: nil) { network in
                let daemon = try Daemon(network: network)
                defer { daemon.destroy() }
                try daemon.write(step: 0)
                try daemon.start()

                let held = try network.startHolding(vip: Plan.vip4, port: 80, proto: .tcp, connections: 40, rounds: 12, interval: 0.5)
                usleep(700_000)
                var fresh: [ClientReport] = []
                for step in 1...3 {
                    try daemon.write(step: step)
                    let answer = try daemon.petrel(["reload"])
                    #expect(answer.contains("generation \(step + 1)"), "reload \(step): \(answer)")
                    fresh.append(try network.exchange(vip: Plan.vip4, port: 80, proto: .tcp, count: 60))
                    if step < 3 { fresh.append(try network.exchange(vip: Self.vipB, port: 80, proto: .tcp, count: 30)) }
                }
                let report = try network.finishHolding(held)
                print("[e2e] held across reloads: \(report.byReal), fresh: \(fresh.map(\.byReal))")

                #expect(!report.anyRoundFailed, "held connections failed: \(report.perConnection.filter { !$0.failedRounds.isEmpty }.count)")
                #expect(report.allSameReal)
                #expect(report.byReal["real3"] == nil, "held connections opened before real3 existed")
                for batch in fresh { #expect(batch.answered == batch.sent, "fresh connections failed: \(batch.sent - batch.answered)") }
                #expect(fresh[0].count("real3") > 0, "the added real takes new connections")
                #expect(fresh.last!.count("real3") == 0, "the removed real takes none")
            }
        }

        @Test("SIGKILL petreld during traffic and start it again: connections and counters continue")
        func killAndRestart() throws {
            try withTestNetwork(vips: nil) { network in
                let daemon = try Daemon(network: network)
                defer { daemon.destroy() }
                try daemon.write(step: 1)
                try daemon.start()

                let held = try network.startHolding(vip: Plan.vip4, port: 80, proto: .tcp, connections: 40, rounds: 10, interval: 0.5)
                usleep(1_200_000)
                let before = try daemon.forwarded()
                daemon.kill9()
                // No control plane at all for a while: the attached program keeps forwarding.
                usleep(1_000_000)
                try daemon.start()
                let status = try daemon.petrel(["status"])
                let report = try network.finishHolding(held)
                let after = try daemon.forwarded()
                print("[e2e] kill -9 and restart: forwarded \(before) -> \(after); held \(report.byReal)")

                #expect(status.contains("adopted maps: yes"), "\(status)")
                #expect(!report.anyRoundFailed, "held connections failed across the restart")
                #expect(report.allSameReal, "held connections kept their real")
                #expect(after > before, "the counters continue from where they were")
            }
        }
    }
}
