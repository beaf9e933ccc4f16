import Foundation
import PetrelAdmin

/// How `petrel top` orders its tables.
enum TopSort: String, CaseIterable {
    case packets, bits, name

    /// The key that selects this order.
    var key: Character {
        switch self {
        case .packets: "p"
        case .bits: "b"
        case .name: "n"
        }
    }
}

/// Per-second rates between two snapshots of the counters.
struct TopRates {
    struct Row {
        var name: String
        var packetsPerSecond: Double
        var bitsPerSecond: Double
    }

    var seconds: Double
    var global: [String: Double]
    var vips: [Row]
    var reals: [Row]

    init(from before: StatsDocument, to now: StatsDocument, seconds: Double) {
        self.seconds = seconds
        func rate(_ new: UInt64, _ old: UInt64?) -> Double {
            // A counter that went down was reset (a new petreld without pinned maps): count from zero.
            let delta = new >= (old ?? 0) ? new - (old ?? 0) : new
            return Double(delta) / max(seconds, 0.001)
        }
        global = now.global.reduce(into: [:]) { $0[$1.key] = rate($1.value, before.global[$1.key]) }
        func rows(_ rows: [TrafficDocument], _ old: [TrafficDocument]) -> [Row] {
            let previous = Dictionary(old.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            return rows.map { row in
                Row(name: row.name, packetsPerSecond: rate(row.packets, previous[row.name]?.packets),
                    bitsPerSecond: rate(row.bytes, previous[row.name]?.bytes) * 8)
            }
        }
        vips = rows(now.vips, before.vips)
        reals = rows(now.reals, before.reals)
    }

    subscript(counter: String) -> Double { global[counter] ?? 0 }

    /// Known flows over all flows placed in the interval; nil when no flow was placed.
    var hitRatio: Double? {
        let hits = self["event_connection_hit"] + self["event_shared_table_hit"]
        let all = hits + self["event_new_connection"]
        return all > 0 ? hits / all : nil
    }
}

/// The screen of `petrel top`, as lines of at most `columns` characters.
struct TopView {
    var title: String
    var rates: TopRates?
    var sort: TopSort
    var error: String?

    func lines(columns: Int, rows: Int) -> [String] {
        let clock = TopView.clock.string(from: Date())
        var lines = [TopView.spread("petrel top: \(title)", "\(clock)", columns)]
        guard let rates else {
            lines.append(error ?? "waiting for the second sample...")
            return lines + Array(repeating: "", count: max(0, rows - 3)) + [footer]
        }
        let outcomes = "rx \(TopView.number(rates["rx"]))/s  fwd \(TopView.number(rates["forward"]))  "
            + "reply \(TopView.number(rates.global.filter { $0.key.hasPrefix("reply_") }.values.reduce(0, +)))  "
            + "pass \(TopView.number(rates.global.filter { $0.key.hasPrefix("pass_") }.values.reduce(0, +)))  "
            + "drop \(TopView.number(rates.global.filter { $0.key.hasPrefix("drop_") }.values.reduce(0, +)))"
        let ratio = rates.hitRatio.map { String(format: "%.1f%%", $0 * 100) } ?? "-"
        lines.append("\(outcomes)  new conns \(TopView.number(rates["event_new_connection"]))/s  table hits \(ratio)")
        let drops = rates.global.filter { $0.key.hasPrefix("drop_") && $0.value > 0 }.sorted { $0.value > $1.value }
        lines.append("drops/s: " + (drops.isEmpty ? "none" : drops.map { "\($0.key.dropFirst(5)) \(TopView.number($0.value))" }.joined(separator: "  ")))
        if let error { lines.append("! \(error)") }

        // The rest, less the footer, goes to the two tables (the VIPs first, each at least its header).
        let space = max(0, rows - lines.count - 1)
        let vips = sorted(rates.vips)
        let reals = sorted(rates.reals)
        let vipSpace = space < 3 ? 0 : min(vips.count + 2, max(3, space - min(reals.count + 2, space / 2)))
        lines += table("VIP", vips, total: nil, space: vipSpace, columns: columns)
        let forwarded = rates.reals.reduce(0) { $0 + $1.packetsPerSecond }
        lines += table("REAL", reals, total: forwarded, space: space - vipSpace, columns: columns)
        while lines.count < rows - 1 { lines.append("") }
        return lines + [footer]
    }

    private var footer: String {
        "q quit  sort: " + TopSort.allCases.map { $0 == sort ? "[\($0.key)] \($0.rawValue)" : "\($0.key) \($0.rawValue)" }.joined(separator: "  ")
    }

    private func sorted(_ rows: [TopRates.Row]) -> [TopRates.Row] {
        switch sort {
        case .packets: rows.sorted { ($0.packetsPerSecond, $1.name) > ($1.packetsPerSecond, $0.name) }
        case .bits: rows.sorted { ($0.bitsPerSecond, $1.name) > ($1.bitsPerSecond, $0.name) }
        case .name: rows.sorted { $0.name < $1.name }
        }
    }

    /// A blank line, a header and as many rows as fit in `space` lines; "... N more" when cut.
    private func table(_ title: String, _ rows: [TopRates.Row], total: Double?, space: Int, columns: Int) -> [String] {
        guard space >= 3 else { return [] }  // too small for a header and one line: left out
        let numbers = total == nil ? 22 : 30
        let nameWidth = max(10, min(columns - numbers, max(title.count, rows.map(\.name.count).max() ?? 0)))
        func line(_ name: String, _ cells: [String]) -> String {
            let cut = name.count > nameWidth ? String(name.prefix(nameWidth - 1)) + "~" : name
            return cut.padding(toLength: nameWidth, withPad: " ", startingAt: 0)
                + cells.map { String(repeating: " ", count: max(0, 10 - $0.count)) + $0 }.joined()
        }
        var lines = ["", line(title, ["PKT/S", "BIT/S"] + (total == nil ? [] : ["SHARE"]))]
        let fit = rows.count <= space - 2 ? rows.count : max(0, space - 3)
        for row in rows.prefix(fit) {
            var cells = [TopView.number(row.packetsPerSecond), TopView.number(row.bitsPerSecond)]
            if let total { cells.append(total > 0 ? String(format: "%.1f%%", row.packetsPerSecond / total * 100) : "-") }
            lines.append(line(row.name, cells))
        }
        if fit < rows.count { lines.append("... \(rows.count - fit) more") }
        return lines
    }

    /// 950, 12.3k, 4.56M, 7.89G.
    static func number(_ value: Double) -> String {
        switch value {
        case ..<999.5: String(format: "%.0f", value)
        case ..<999_500: String(format: "%.1fk", value / 1e3)
        case ..<999_500_000: String(format: "%.2fM", value / 1e6)
        default: String(format: "%.2fG", value / 1e9)
        }
    }

    private static func spread(_ left: String, _ right: String, _ columns: Int) -> String {
        let gap = columns - left.count - right.count
        return gap >= 1 ? left + String(repeating: " ", count: gap) + right : left
    }

    private static let clock: DateFormatter = {
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        return formatter
    }()
}
