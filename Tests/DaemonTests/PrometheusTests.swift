import Foundation
import Glibc
import Testing

/// petreld's /metrics as Prometheus users consume it: the page passes
/// `promtool check metrics`, and a real Prometheus server (Debian's) scrapes
/// petreld every second during traffic and answers queries that match what
/// was sent. Needs root.
@Suite(.serialized)
struct PrometheusTests {
    static let vip = "udp/198.18.100.1:53"

    @Test func theScrapePassesPromtool() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start()
        try harness.sendTraffic(count: 7)

        let page = try harness.inNamespaceOutput(["curl", "-s", "http://127.0.0.1:9181/metrics"])
        try page.write(toFile: harness.directory + "/metrics.txt", atomically: true, encoding: .utf8)
        let check = try harness.capture("/bin/sh", ["-c", "promtool check metrics < \(harness.directory)/metrics.txt"])
        #expect(check.status == 0, "promtool: \(check.output)")
        #expect(check.output.isEmpty, "promtool finds nothing to say: \(check.output)")

        // The families add up: outcomes to the packets received, reasons to their outcome.
        let samples = MetricSamples(page)
        // (The kernel's own packets on a new link, like IPv6 neighbour discovery, count too.)
        let received = try #require(samples["petrel_received_packets_total"])
        #expect(received >= 7)
        #expect(samples.sum("petrel_packets_total") == received)
        #expect(samples["petrel_packets_total{outcome=\"forward\"}"] == 7)
        #expect(samples.sum("petrel_dropped_packets_total") == samples["petrel_packets_total{outcome=\"drop\"}"])
        #expect(samples.sum("petrel_passed_packets_total") == samples["petrel_packets_total{outcome=\"pass\"}"])
        #expect(samples.sum("petrel_replied_packets_total") == samples["petrel_packets_total{outcome=\"reply\"}"])
        #expect(samples["petrel_replied_packets_total{reason=\"too_big\"}"] == 0)
        #expect(samples["petrel_events_total{event=\"new_connection\"}"] ?? 0 >= 1)
        let vipLabels = "{vip=\"\(PrometheusTests.vip)\",protocol=\"udp\",address=\"198.18.100.1\",port=\"53\"}"
        #expect(samples["petrel_vip_forwarded_packets_total" + vipLabels] == 7)
        #expect(samples["petrel_vip_forwarded_bytes_total" + vipLabels] == Double(7 * 48), "bytes as received: 14 + 20 + 8 + 6 per frame")
        #expect(samples.sum("petrel_real_forwarded_packets_total") == 7)
        #expect(samples["petrel_vip_real_weight{vip=\"\(PrometheusTests.vip)\",protocol=\"udp\",address=\"198.18.100.1\",port=\"53\",real=\"198.18.3.12\"}"] == 1)
        #expect(page.contains("petrel_build_info{version=\""))
        #expect(samples["petrel_interface_transmit_errors_total{interface=\"veth0\"}"] != nil)

        // Process metrics are petreld's own: its fds and threads as /proc shows them.
        let pid = try #require(harness.daemonPID)
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
        let openFDs = try #require(samples["process_open_fds"])
        #expect(abs(openFDs - Double(fds)) <= 3, "process_open_fds \(openFDs) vs /proc/\(pid)/fd \(fds)")
        #expect(samples["process_threads"] ?? 0 >= 2)
        #expect(samples["process_resident_memory_bytes"] ?? 0 > 1_000_000)
        let started = try #require(samples["process_start_time_seconds"])
        #expect(abs(started - Date().timeIntervalSince1970) < 120, "petreld started in the last two minutes")
    }

    /// A port-0 VIP is `port="*"` in both its labels.
    @Test func anAllPortsVipIsLabelledConsistently() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig(extraVips: """
              - address: 198.18.100.2
                port: 0
                protocol: tcp
                reals:
                  - address: 198.18.3.11

            """)
        try harness.start()
        let page = try harness.inNamespaceOutput(["curl", "-s", "http://127.0.0.1:9181/metrics"])
        #expect(page.contains("petrel_vip_forwarded_packets_total{vip=\"tcp/198.18.100.2:*\",protocol=\"tcp\",address=\"198.18.100.2\",port=\"*\"} 0"))
    }

    @Test func prometheusScrapesPetreldDuringTraffic() throws {
        let harness = try DaemonHarness()
        defer { harness.stop() }
        try harness.writeConfig()
        try harness.start()

        let prometheus = try PrometheusServer(harness: harness)
        defer { prometheus.stop() }
        try harness.waitUntil("Prometheus scrapes petreld", timeout: 30) {
            (try prometheus.query("up{job=\"petreld\"}")) == 1
        }

        let rate = 400
        let seconds = 6
        let sender = try harness.startTraffic(rate: rate, seconds: seconds)
        defer { if sender.isRunning { sender.terminate() } }
        // rate() over 3 s needs scrapes taken during the traffic; ask until one falls in range.
        var seen: [Double] = []
        try harness.waitUntil("rate() matches the \(rate) datagrams/s sent", timeout: Double(seconds)) {
            let answer = try prometheus.query("rate(petrel_vip_forwarded_packets_total{vip=\"\(PrometheusTests.vip)\"}[3s])")
            if let answer { seen.append(answer) }
            return answer.map { abs($0 - Double(rate)) <= Double(rate) * 0.15 } ?? false
        }
        sender.waitUntilExit()

        // Once traffic stops and a scrape follows, the outcomes add up to the packets received.
        try harness.waitUntil("Prometheus has scraped the whole burst", timeout: 10) {
            (try prometheus.query("petrel_vip_forwarded_packets_total{vip=\"\(PrometheusTests.vip)\"}")) == Double(rate * seconds)
        }
        #expect(try prometheus.query("sum(petrel_packets_total) - sum(petrel_received_packets_total)") == 0)
        #expect(try prometheus.query("sum(petrel_real_forwarded_packets_total)") == Double(rate * seconds))
        #expect(try prometheus.query("process_open_fds{job=\"petreld\"} > 0") != nil)
    }
}

/// Debian's Prometheus inside the harness's namespace, scraping petreld every second.
final class PrometheusServer {
    let harness: DaemonHarness
    let process: Process
    static let listen = "127.0.0.1:9190"

    init(harness: DaemonHarness) throws {
        self.harness = harness
        let directory = harness.directory + "/prometheus"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try """
        global:
          scrape_interval: 1s
          evaluation_interval: 1s
        scrape_configs:
          - job_name: petreld
            static_configs:
              - targets: ["127.0.0.1:9181"]

        """.write(toFile: directory + "/prometheus.yml", atomically: true, encoding: .utf8)
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = ["netns", "exec", harness.namespace, "/usr/bin/prometheus",
                             "--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data",
                             "--web.listen-address=\(PrometheusServer.listen)", "--log.level=warn"]
        let log = FileManager.default.createFile(atPath: directory + "/log", contents: nil) ? FileHandle(forWritingAtPath: directory + "/log") : nil
        process.standardOutput = log ?? FileHandle.nullDevice
        process.standardError = log ?? FileHandle.nullDevice
        try process.run()
    }

    /// The value of an instant query's single result; nil when it has none.
    func query(_ promQL: String) throws -> Double? {
        let result = try harness.capture("/usr/sbin/ip", ["netns", "exec", harness.namespace, "curl", "-s", "--max-time", "5",
                                                          "http://\(PrometheusServer.listen)/api/v1/query", "--data-urlencode", "query=\(promQL)"])
        // Not listening yet (curl fails), or listening but not ready: until its storage is
        // open, Prometheus answers 503 with the plain text "Service Unavailable".
        guard result.status == 0,
              let document = try? JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any]
        else { return nil }
        guard let data = document["data"] as? [String: Any], let results = data["result"] as? [[String: Any]] else {
            throw DaemonHarness.Failure(description: "Prometheus answered \(promQL) with \(result.output)")
        }
        guard results.count == 1, let value = results[0]["value"] as? [Any], value.count == 2, let text = value[1] as? String else {
            return nil
        }
        return Double(text)
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}

/// A scraped page's samples by series (`name{labels}`), for checking sums.
struct MetricSamples {
    private var values: [String: Double] = [:]

    init(_ page: String) {
        for line in page.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            values[String(line[..<space])] = value
        }
    }

    subscript(series: String) -> Double? { values[series] }

    /// The sum over every series of one family.
    func sum(_ family: String) -> Double {
        values.filter { $0.key == family || $0.key.hasPrefix(family + "{") }.values.reduce(0, +)
    }
}
