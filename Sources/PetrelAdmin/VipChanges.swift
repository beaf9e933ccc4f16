import Petrel

/// What replacing a VIP changes, in the operator's words: the lines `petrel vip add`
/// and `petrel vip set` print, and the `changes` of the admin API's answer.
public enum VipChanges {
    /// From `before` (nil: the VIP is new) to `after`, one line per real or setting that differs.
    public static func describe(from before: Vip?, to after: Vip) -> [String] {
        func real(_ real: Real) -> String { "\(real.address) (weight \(real.weight))" }
        guard let before else {
            return [after.reals.isEmpty ? "created with no reals (its traffic is dropped until a real is added)"
                : "created with \(after.reals.count) real(s): " + after.reals.map(real).joined(separator: ", ")]
                + (after.flags.isEmpty ? [] : ["flags \(after.flags.names.joined(separator: ","))"])
                + after.sourceRoutes.map { "source route \($0.prefix) -> \($0.real)" }
        }
        var lines: [String] = []
        let old = Dictionary(before.reals.map { ($0.address, $0.weight) }, uniquingKeysWith: { first, _ in first })
        let new = Dictionary(after.reals.map { ($0.address, $0.weight) }, uniquingKeysWith: { first, _ in first })
        for added in after.reals where old[added.address] == nil { lines.append("real \(real(added)) added") }
        for removed in before.reals where new[removed.address] == nil { lines.append("real \(removed.address) removed") }
        for kept in after.reals {
            if let weight = old[kept.address], weight != kept.weight {
                lines.append("real \(kept.address) weight \(weight) -> \(kept.weight)")
            }
        }
        if before.flags != after.flags {
            func names(_ flags: VipFlags) -> String { flags.isEmpty ? "none" : flags.names.joined(separator: ",") }
            lines.append("flags \(names(before.flags)) -> \(names(after.flags))")
        }
        let oldRoutes = Dictionary(before.sourceRoutes.map { ($0.prefix, $0.real) }, uniquingKeysWith: { first, _ in first })
        let newRoutes = Dictionary(after.sourceRoutes.map { ($0.prefix, $0.real) }, uniquingKeysWith: { first, _ in first })
        for route in after.sourceRoutes {
            switch oldRoutes[route.prefix] {
            case nil: lines.append("source route \(route.prefix) -> \(route.real) added")
            case let old? where old != route.real: lines.append("source route \(route.prefix) -> \(old) -> \(route.real)")
            default: break
            }
        }
        for route in before.sourceRoutes where newRoutes[route.prefix] == nil { lines.append("source route \(route.prefix) removed") }
        if !before.reals.isEmpty && after.reals.isEmpty { lines.append("no reals left: its traffic is dropped") }
        return lines.isEmpty ? ["unchanged"] : lines
    }
}
