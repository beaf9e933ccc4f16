import Petrel
import PetrelConfig

extension BGPConfiguration {
    /// The `bgp` section as config-file lines (every setting spelled out).
    var yamlLines: [String] {
        var lines = ["bgp:", "  local_asn: \(localASN)", "  router_id: \(routerID)", "  hold_time: \(holdTime)",
                     "  keepalive_time: \(keepaliveTime)", "  connect_retry_time: \(connectRetryTime)",
                     "  drain_time: \(drainTime)"]
        if !communities.isEmpty { lines.append("  communities: [\(communities.map { "\"\($0)\"" }.joined(separator: ", "))]") }
        if let med { lines.append("  med: \(med)") }
        lines.append("  neighbors:")
        for neighbor in neighbors {
            lines.append("    - address: \"\(neighbor.address)\"")
            lines.append("      asn: \(neighbor.asn)")
            if let hop = neighbor.nextHop { lines.append("      next_hop: \"\(hop)\"") }
        }
        lines += ["  bird:", "    binary: \"\(bird.binary)\"", "    control_socket: \"\(bird.controlSocket)\"",
                  "    config_file: \"\(bird.configFile)\""]
        return lines
    }
}
