import Foundation
import Petrel

/// Two configurations that differ in every way a change can (VIPs added and
/// removed, reals swapped, weights, flags and source routes changed), for killing a process
/// in the middle of switching between them.
public enum ApplyFaults {
    public static let limits = DataPlaneLimits(maxVips: 64, maxReals: 256, ringSize: 4093, connectionTableSize: 1024)

    public static func configuration(_ which: Int) -> [Vip] {
        (0..<40).compactMap { n -> Vip? in
            // VIPs 0-29 are in both, 30-34 only in the first, 35-39 only in the second.
            if n >= 30 && n < 35 && which == 1 { return nil }
            if n >= 35 && which == 0 { return nil }
            let key = VipKey(address: .v4(198, 18, 100, UInt8(n)), port: 80, proto: .tcp)
            let first = which == 0 ? 1 : 4
            let reals = (first..<first + 5).map { Real(address: .v4(198, 18, 3, UInt8(n + $0)), weight: UInt32(which == 0 ? 1 : $0)) }
            // Every third VIP pins client prefixes to its reals: one prefix kept (repointed), one swapped.
            let routes = n % 3 != 0 ? [] : [
                SourceRoute(prefix: IPPrefix(address: .v4(10, 0, 0, 0), length: 8), real: reals[which == 0 ? 0 : 2].address),
                SourceRoute(prefix: IPPrefix(address: .v4(10, UInt8(n), which == 0 ? 0 : 128, 0), length: which == 0 ? 16 : 17),
                            real: reals[which == 0 ? 1 : 3].address),
            ]
            return Vip(key: key, flags: which == 0 ? [] : .hashWithoutSourcePort, reals: reals, sourceRoutes: routes)
        }
    }

    /// Applies the two configurations in turn, forever, on maps pinned at `pinPath`.
    public static func applyForever(pinPath: String) throws -> Never {
        let balancer = try LoadBalancer(limits: limits, pinPath: pinPath)
        try balancer.apply(configuration(0))
        FileHandle.standardOutput.write(Data("applied\n".utf8))  // the test waits for the first apply
        var which = 1
        while true {
            try balancer.apply(configuration(which))
            which ^= 1
        }
    }
}
