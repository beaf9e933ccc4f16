import Foundation
import Testing
@testable import PetrelHealth

/// The rise/fall state machine, alone.
@Suite("HealthCheck state: rise and fall")
struct RealHealthTests {
    let ok = ProbeResult.passed("connected")
    let bad = ProbeResult.failed(.refused)

    /// Feeds `results` ("+" pass, "-" fail) and returns the states after each, as "U"/"D".
    func run(_ results: String, rise: Int, fall: Int) -> (states: String, health: RealHealth) {
        var health = RealHealth(since: Date())
        var states = ""
        for c in results {
            _ = health.record(c == "+" ? ok : bad, rise: rise, fall: fall, at: Date())
            states += health.isUp ? "U" : "D"
        }
        return (states, health)
    }

    @Test("Down after exactly fall failures in a row, up after exactly rise successes in a row", arguments: [
        // results, rise, fall, states after each result
        ("---", 2, 3, "UUD"),
        ("--+--", 2, 3, "UUUUU"),
        ("---++", 2, 3, "UUDDU"),
        ("---+-++", 2, 3, "UUDDDDU"),
        ("-", 1, 1, "D"),
        ("-+", 1, 1, "DU"),
        ("+-+-+-+-", 2, 2, "UUUUUUUU"),
        ("--+-+-+-", 2, 2, "UDDDDDDD"),
        ("--++--++", 2, 2, "UDDUUDDU"),
        ("-----+++++", 5, 5, "UUUUDDDDDU"),
    ])
    func thresholds(results: String, rise: Int, fall: Int, expected: String) {
        #expect(run(results, rise: rise, fall: fall).states == expected)
    }

    @Test("Transitions are counted and carry the result that made them")
    func transitionsAndReason() {
        var health = RealHealth(since: Date(timeIntervalSince1970: 0))
        #expect(health.record(.failed(.httpStatus(503)), rise: 2, fall: 2, at: Date()) == .none)
        let change = health.record(.failed(.httpStatus(503)), rise: 2, fall: 2, at: Date(timeIntervalSince1970: 10))
        #expect(change == .wentDown(reason: "HTTP 503 (2 failures in a row)"))
        #expect(health.since == Date(timeIntervalSince1970: 10) && health.wentDown == 1 && health.wentUp == 0)
        _ = health.record(.passed("HTTP 200"), rise: 2, fall: 2, at: Date())
        #expect(health.record(.passed("HTTP 200"), rise: 2, fall: 2, at: Date()) == .wentUp(reason: "HTTP 200 (2 successes in a row)"))
        #expect(health.wentUp == 1 && health.lastResult == .passed("HTTP 200"))
    }

    @Test("A long random run changes state exactly when a reference count says")
    func randomAgainstReference() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            let rise = Int.random(in: 1...4, using: &rng), fall = Int.random(in: 1...4, using: &rng)
            let results = String((0..<200).map { _ in Bool.random(using: &rng) ? "+" : "-" })
            // Reference: the state flips when the run of the other kind reaches its threshold.
            var up = true, run = 0, last: Character = " ", expected = ""
            for c in results {
                run = c == last ? run + 1 : 1
                last = c
                if up && c == "-" && run >= fall { up = false } else if !up && c == "+" && run >= rise { up = true }
                expected += up ? "U" : "D"
            }
            #expect(self.run(results, rise: rise, fall: fall).states == expected, "rise \(rise) fall \(fall): \(results)")
        }
    }
}
