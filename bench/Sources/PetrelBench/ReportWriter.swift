import Foundation

/// Writes latest.json, latest.md and (through bench/plot.py) latest.png.
struct ReportWriter {
    let directory: URL

    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }

    /// Writes the three files under `baseName` (e.g. "latest"); returns their paths.
    @discardableResult
    func write(_ results: BenchResults, baseName: String, plotScript: URL?) throws -> [URL] {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let json = directory.appendingPathComponent("\(baseName).json")
        let markdown = directory.appendingPathComponent("\(baseName).md")
        let png = directory.appendingPathComponent("\(baseName).png")
        try ReportWriter.encoder().encode(results).write(to: json)
        try Data(ReportWriter.markdown(results).utf8).write(to: markdown)
        var written = [json, markdown]
        if let plotScript {
            if plot(script: plotScript, json: json, png: png) { written.append(png) }
        }
        return written
    }

    /// Runs bench/plot.py with Debian's python3 (matplotlib); a missing plot is only a warning.
    private func plot(script: URL, json: URL, png: URL) -> Bool {
        let python = "/usr/bin/python3"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            Progress.warn("no \(python): skipping the plot")
            return false
        }
        do {
            try Host.run([python, script.path, json.path, png.path])
            return true
        } catch {
            Progress.warn("plot not drawn: \(error)")
            return false
        }
    }

    // MARK: Markdown

    static func markdown(_ r: BenchResults) -> String {
        func f(_ value: Double?, _ places: Int = 2) -> String {
            guard let value else { return "–" }
            return String(format: "%.\(places)f", value)
        }
        var lines: [String] = []
        let m = r.machine
        lines.append("# petrel-bench results (\(r.mode))")
        lines.append("")
        lines.append("\(m.date) · kernel \(m.kernel) · \(m.cpuModel) · \(m.cores) cores · \(m.packetSize)-byte IPv4 TCP frames · \(m.vips) VIPs, \(m.reals) reals · \(m.flows) live flows")
        lines.append("")

        lines.append("## Targets")
        lines.append("")
        lines.append("| Target | Goal | Measured | Met |")
        lines.append("|---|---|---|---|")
        for t in r.targets {
            lines.append("| \(t.name) | \(t.target) | \(t.measured) | \(t.met.map { $0 ? "yes" : "**no**" } ?? "not measured") |")
        }
        lines.append("")

        let pc = r.packetCost
        lines.append("## Cost per packet (BPF_PROG_TEST_RUN, \(pc.repetitions) repetitions × \(pc.rounds) rounds, CPU \(pc.cpu))")
        lines.append("")
        lines.append("| Scenario | ns/packet | baseline ns | × baseline | Mpps (1 core) | median ns | median baseline | method | valid |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---|---|")
        for s in r.scenarios {
            lines.append("| \(s.name) | \(f(s.nsPerPacket)) | \(f(s.baselineNsPerPacket)) | \(f(s.ratioToBaseline)) | \(f(s.mpps)) "
                + "| \(f(s.medianNsPerPacket)) | \(f(s.medianBaselineNsPerPacket)) | \(s.method) | \(s.valid ? "yes" : "**NO**") |")
        }
        lines.append("")
        lines.append("Restore wrapper overhead subtracted: \(f(pc.wrapperOverheadNs)) ns (wrapper + tail call). "
            + "Restore itself, still included in the forwarding rows: about \(f(pc.restoreEstimateNs)) ns. "
            + (pc.subtractionCheck.map { "Subtraction check on the non-VIP packet: \(f($0.directNs)) ns direct, \(f($0.throughWrapperNs)) ns through the wrapper minus its overhead." } ?? ""))
        lines.append("Clock: \(pc.clock).")
        lines.append("")

        lines.append("## Live packet rate (veth, native XDP)")
        lines.append("")
        if r.live.ran {
            lines.append("\(r.live.rounds) round(s) of \(f(r.live.windowSeconds, 1)) s per queue count; \(r.live.flowsPerQueue) flows per queue; generator batch \(r.live.generatorBatchSize).")
            lines.append("")
            lines.append("| Queues | Petrel Mpps | scaling | baseline Mpps | baseline scaling | Petrel / baseline | Petrel extra ns/packet | offered Mpps | valid |")
            lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
            for q in r.live.queues {
                let share = q.mpps.flatMap { p in q.baselineMpps.map { p / $0 } }
                lines.append("| \(q.queues) | \(f(q.mpps, 3)) | \(f(q.scaling)) | \(f(q.baselineMpps, 3)) | \(f(q.baselineScaling)) | \(f(share)) | \(f(q.extraNsPerPacket, 1)) | \(f(q.offeredMpps, 3)) | \(q.valid ? "yes" : "**NO**") |")
            }
        } else {
            lines.append("Not run: \(r.live.reason ?? "skipped").")
        }
        lines.append("")

        lines.append("## Control plane")
        lines.append("")
        lines.append("| Figure | Value | What |")
        lines.append("|---|---:|---|")
        for (name, figure) in r.controlPlane.sorted(by: { $0.key < $1.key }) {
            lines.append("| \(name) | \(f(figure.value, 3)) \(figure.unit) | \(figure.detail) |")
        }
        if !r.warnings.isEmpty {
            lines.append("")
            lines.append("## Warnings")
            lines.append("")
            for warning in r.warnings { lines.append("- \(warning)") }
        }
        lines.append("")
        return lines.joined(separator: "\n")
    }
}
