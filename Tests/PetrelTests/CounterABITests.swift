import CPetrelABI
import Foundation
import Petrel
import Testing

/// Swift's counter reasons and decapsulation outcomes against the enums of
/// bpf/include/petrel_abi.h, read from the header itself: same names, same
/// order, same count. A counter added or renamed on one side fails here.
@Suite("Counters match the shared header")
struct CounterABITests {
    static let header: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return (try? String(contentsOf: root.appendingPathComponent("bpf/include/petrel_abi.h"), encoding: .utf8)) ?? ""
    }()

    /// The members of `enum <name>` in order, without `prefix`, in lower case, up to the *_COUNT member.
    static func members(of name: String, prefix: String) -> [String] {
        guard let start = header.range(of: "enum \(name) {"),
              let end = header.range(of: "};", range: start.upperBound..<header.endIndex) else { return [] }
        let body = header[start.upperBound..<end.lowerBound]
        let identifiers = body.split(separator: "\n").compactMap { line -> String? in
            let code = line.split(separator: "/*").first.map(String.init) ?? ""
            let token = code.trimmingCharacters(in: .whitespaces).split(whereSeparator: { $0 == "," || $0 == " " || $0 == "=" }).first
            guard let token, token.hasPrefix(prefix) else { return nil }
            return String(token.dropFirst(prefix.count)).lowercased()
        }
        return Array(identifiers.prefix { !$0.hasSuffix("count") })
    }

    @Test("StatReason: the names, order and count of enum petrel_stat")
    func statReasons() {
        let names = Self.members(of: "petrel_stat", prefix: "PETREL_STAT_")
        #expect(names.count == Int(PETREL_STAT_COUNT.rawValue))
        #expect(StatReason.allCases.map(\.name) == names)
        #expect(StatReason.allCases.map(\.rawValue) == Array(0..<UInt32(names.count)))
        #expect(StatReason.count == names.count)
        // The header's rule for outcomes, checked against its own words.
        #expect(StatReason.allCases.filter(\.isOutcome).map(\.name)
                == names.filter { $0 == "forward" || $0.hasPrefix("reply_") || $0.hasPrefix("pass_") || $0.hasPrefix("drop_") })
        #expect(StatReason.allCases.filter(\.isOutcome).count == 13)
    }

    @Test("Decapsulator.Outcome: the names, order and count of enum petrel_decap_stat")
    func decapOutcomes() {
        let names = Self.members(of: "petrel_decap_stat", prefix: "PETREL_DECAP_")
        #expect(names.count == Int(PETREL_DECAP_STAT_COUNT.rawValue))
        #expect(Decapsulator.Outcome.allCases.map(\.name) == names)
        #expect(Decapsulator.Outcome.allCases.map(\.rawValue) == Array(0..<UInt32(names.count)))
    }
}
