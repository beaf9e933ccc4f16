import Foundation
import Petrel
import PetrelFuzz
import Testing

/// A process killed in the middle of an apply leaves every VIP either wholly in
/// its old or wholly in its new state (ring and flags together): never a flow
/// sent to a real outside both, never an empty slot, never a mixed ring.
@Suite("Killing the control process during an apply")
struct KillDuringApplyTests {
    @Test("20 SIGKILLs at random moments; every VIP is wholly old or wholly new")
    func killDuringApply() throws {
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("petrel-fuzz")
        try #require(FileManager.default.isExecutableFile(atPath: binary.path), "build petrel-fuzz first (swift build)")
        let pinPath = "/sys/fs/bpf/petrel-test-\(getpid())-kill"
        defer { try? FileManager.default.removeItem(atPath: pinPath) }

        let old = Dictionary(uniqueKeysWithValues: ApplyFaults.configuration(0).map { ($0.key, Set($0.reals.map(\.address))) })
        let new = Dictionary(uniqueKeysWithValues: ApplyFaults.configuration(1).map { ($0.key, Set($0.reals.map(\.address))) })
        var rng = SystemRandomNumberGenerator()
        var vipsSeen = 0
        var roundsCaughtMidApply = 0
        for round in 0..<20 {
            let victim = Process()
            victim.executableURL = binary
            victim.arguments = ["apply-forever", pinPath]
            let applied = Pipe()
            victim.standardOutput = applied
            try victim.run()
            // The first victim loads the program and makes its first apply (a debug
            // build on a busy machine can take longer than the kill window) before
            // the kills begin; later victims adopt its maps, so every round has VIPs.
            if round == 0 { _ = applied.fileHandleForReading.readData(ofLength: 8) }
            usleep(UInt32.random(in: 20_000...250_000, using: &rng))
            kill(victim.processIdentifier, SIGKILL)
            victim.waitUntilExit()

            let survivor = try LoadBalancer(limits: ApplyFaults.limits, pinPath: pinPath)
            let snapshot = try survivor.dataPlaneSnapshot()
            for (key, entry) in snapshot.vips {
                let allowed = (old[key] ?? []).union(new[key] ?? [])
                #expect(!allowed.isEmpty, "round \(round): VIP \(key) is in neither configuration")
                let addresses = try #require(snapshot.ringAddresses(of: key))
                let outside = addresses.enumerated().filter { $0.element == nil || !allowed.contains($0.element!) }
                #expect(outside.isEmpty, "round \(round): \(key) slot \(outside.first?.offset ?? -1) -> \(String(describing: outside.first?.element)) (row \(entry.row))")
                let used = Set(addresses.compactMap { $0 })
                let wholeOld = old[key].map { used.isSubset(of: $0) } ?? false
                let wholeNew = new[key].map { used.isSubset(of: $0) } ?? false
                #expect(wholeOld || wholeNew, "round \(round): \(key) has a ring mixing both configurations")
                // 0x10 is the planner's source-routes bit, not an operator flag.
                let flags = VipFlags(rawValue: entry.flags.rawValue & ~0x10)
                if wholeOld && !wholeNew { #expect(flags == [], "round \(round): \(key) old ring with new flags") }
                if wholeNew && !wholeOld { #expect(flags == .hashWithoutSourcePort, "round \(round): \(key) new ring with old flags") }
                // Source routes change prefix by prefix, but each names a live real of the VIP, old or new.
                for (prefix, id) in snapshot.sourceRouteIds(of: key) ?? [:] where id != 0 {
                    let real = snapshot.reals[id]
                    #expect(real.map(allowed.contains) == true, "round \(round): \(key) route \(prefix) -> id \(id) (\(String(describing: real)))")
                }
            }
            vipsSeen += snapshot.vips.count
            // Some VIPs already switched and others not: the kill landed inside an apply.
            let states = Set(snapshot.vips.compactMap { key, _ -> Int? in
                guard let first = snapshot.ringAddresses(of: key)?.first, let address = first else { return nil }
                return old[key]?.contains(address) == true && new[key]?.contains(address) != true ? 0
                    : (new[key]?.contains(address) == true && old[key]?.contains(address) != true ? 1 : nil)
            })
            if states.count == 2 { roundsCaughtMidApply += 1 }
        }
        print("kill during apply: \(roundsCaughtMidApply) of 20 kills landed inside an apply")
        // The last survivor's apply makes the trie exact again: the routes of the VIPs there are, nothing else.
        let survivor = try LoadBalancer(limits: ApplyFaults.limits, pinPath: pinPath)
        try survivor.apply(ApplyFaults.configuration(1))
        let final = try survivor.dataPlaneSnapshot()
        for vip in ApplyFaults.configuration(1) {
            #expect(Set(final.sourceRouteIds(of: vip.key)?.keys ?? [:].keys) == Set(vip.sourceRoutes.map(\.prefix)), "\(vip.key)")
        }
        #expect(vipsSeen > 0)
    }
}
