/// The admin API's paths and the methods each one takes (docs/admin-api.yaml
/// describes them): a known path with another method gets 405 and `Allow`,
/// an unknown path 404.
enum AdminRoutes {
    /// The methods served on a path (split at "/"), empty for an unknown path.
    static func methods(for parts: [String]) -> [String] {
        switch parts.count {
        case 1 where parts == ["metrics"]: return ["GET"]
        case 2 where parts[0] == "v1":
            switch parts[1] {
            case "status", "stats", "explain", "health", "flows", "capture": return ["GET"]
            case "vips": return ["GET", "POST"]
            case "reload": return ["POST"]
            default: return []
            }
        case 5 where parts[0] == "v1" && parts[1] == "ring": return ["GET"]
        case 5 where isVip(parts): return ["GET", "DELETE"]
        case 6 where isVip(parts) && parts[5] == "reals": return ["POST"]
        case 7 where isVip(parts) && parts[5] == "reals": return ["DELETE"]
        case 8 where isVip(parts) && parts[5] == "reals" && parts[7] == "weight": return ["PUT"]
        default: return []
        }
    }

    /// The methods the metrics listener serves on a path.
    static func metricsMethods(for parts: [String]) -> [String] {
        parts == ["metrics"] ? ["GET"] : []
    }

    private static func isVip(_ parts: [String]) -> Bool { parts[0] == "v1" && parts[1] == "vips" }
}
