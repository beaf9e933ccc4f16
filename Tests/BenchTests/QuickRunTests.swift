import Foundation
import Testing

// Runs the built petrel-bench in quick mode, as a user would, and checks the
// files it writes. Speed is never asserted: the machine may be busy.

@Suite(.serialized, .enabled(if: getuid() == 0, "petrel-bench needs root (BPF, network namespaces)"))
struct QuickRunTests {
    @Test func quickRunWritesWellFormedResults() throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("petrel-bench-test-\(getpid())")
        try? FileManager.default.removeItem(at: output)
        defer { try? FileManager.default.removeItem(at: output) }

        let run = try BenchBinary.run(["--quick", "--output-directory", output.path], timeout: 240)
        #expect(run.status == 0, "petrel-bench --quick failed:\n\(run.error)")

        let data = try Data(contentsOf: output.appendingPathComponent("latest.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in ["mode", "machine", "scenarios", "live", "control_plane", "targets", "packet_cost"] {
            #expect(json[key] != nil, "latest.json lacks \(key)")
        }
        #expect(json["mode"] as? String == "quick")

        let machine = try #require(json["machine"] as? [String: Any])
        for key in ["kernel", "cpu_model", "cores", "date", "packet_size", "flows", "vips", "reals"] {
            #expect(machine[key] != nil, "machine lacks \(key)")
        }

        let scenarios = try #require(json["scenarios"] as? [[String: Any]])
        let names = Set(scenarios.compactMap { $0["name"] as? String })
        for name in ["ipv4_tcp_conn_hit", "ipv4_tcp_new_flow_lru_bypass", "ipv4_tcp_syn_new_flow", "ipv6_tcp_conn_hit",
                     "ipv4_in_ipv6_conn_hit", "ipv4_udp_conn_hit", "ipv4_port_wildcard_conn_hit", "ipv4_not_vip_pass", "ipv4_malformed_drop", "ipv4_tcp_syn_flood",
                     "ipv4_tcp_gue_conn_hit", "ipv4_quic_short_header", "ipv4_tcp_syn_source_routed"] {
            #expect(names.contains(name), "no scenario \(name)")
        }
        for scenario in scenarios {
            for key in ["name", "ns_per_packet", "baseline_ns_per_packet", "ratio_to_baseline", "mpps", "valid"] {
                #expect(scenario[key] != nil, "scenario \(scenario["name"] ?? "?") lacks \(key)")
            }
            // Validity is about the counters proving the work was done, not speed.
            #expect(scenario["valid"] as? Bool == true, "scenario \(scenario["name"] ?? "?") invalid: \(scenario["problems"] ?? "")")
        }

        // The live rate must run (it once failed unnoticed: "query XDP programs on 'lb0' failed").
        let live = try #require(json["live"] as? [String: Any])
        #expect(live["ran"] as? Bool == true, "the live rate did not run: \(json["warnings"] ?? "")")
        let queues = live["queues"] as? [[String: Any]] ?? []
        #expect(!queues.isEmpty)
        for entry in queues {
            for key in ["queues", "mpps", "baseline_mpps"] {
                #expect(entry[key] != nil, "live entry lacks \(key)")
            }
            #expect(entry["valid"] as? Bool == true, "live, \(entry["queues"] ?? "?") queue(s): \(entry["problems"] ?? "")")
        }

        let controlPlane = try #require(json["control_plane"] as? [String: Any])
        for name in ["maglev_65537_10_reals_ms", "maglev_65537_100_reals_ms", "maglev_65537_1000_reals_ms",
                     "apply_10000_vips_100_reals_s", "reload_one_real_10000_vips_100_reals_ms", "peak_rss_10000_vips_100_reals_mib"] {
            let figure = controlPlane[name] as? [String: Any]
            #expect(figure?["value"] is Double || figure?["value"] is Int, "control_plane lacks \(name)")
        }

        let markdown = try String(contentsOf: output.appendingPathComponent("latest.md"), encoding: .utf8)
        #expect(markdown.contains("| ipv4_tcp_conn_hit |"))
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") {
            let png = try Data(contentsOf: output.appendingPathComponent("latest.png"))
            #expect(png.starts(with: [0x89, 0x50, 0x4e, 0x47]), "latest.png is not a PNG")
        }
    }

    @Test func helpDescribesTheRun() throws {
        let root = try BenchBinary.run(["--help"], timeout: 30)
        #expect(root.status == 0)
        #expect(root.output.contains("--quick"))
        let run = try BenchBinary.run(["run", "--help"], timeout: 30)
        #expect(run.status == 0)
        #expect(run.output.contains("--output-directory"))
    }
}

/// The petrel-bench binary built next to this test bundle.
enum BenchBinary {
    struct Result {
        var status: Int32
        var output: String
        var error: String
    }

    static var path: String {
        let runner = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: runner).deletingLastPathComponent().appendingPathComponent("petrel-bench").path
    }

    static func run(_ arguments: [String], timeout: TimeInterval) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        // Drain both pipes while the child runs, so it never blocks on a full pipe.
        let outData = Drained(output), errData = Drained(error)
        if !outData.wait(timeout: timeout) || !errData.wait(timeout: 10) {
            process.terminate()
            _ = outData.wait(timeout: 10)
        }
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: outData.data, as: UTF8.self),
                      error: String(decoding: errData.data, as: UTF8.self))
    }
}

/// A pipe read to its end on a background queue.
final class Drained: @unchecked Sendable {
    private(set) var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ pipe: Pipe) {
        DispatchQueue.global().async {
            self.data = pipe.fileHandleForReading.readDataToEndOfFile()
            self.done.signal()
        }
    }

    /// False if the pipe was still open after `timeout` seconds.
    func wait(timeout: TimeInterval) -> Bool {
        done.wait(timeout: .now() + timeout) == .success
    }
}
