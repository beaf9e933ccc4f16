import Foundation

/// The targets of the benchmark issue, checked against one run's figures.
/// A figure from an invalid measurement never meets a target.
enum Targets {
    static func check(_ r: BenchResults) -> [TargetCheck] {
        func scenario(_ name: String) -> ScenarioResult? { r.scenarios.first { $0.name == name && $0.valid } }
        func f(_ value: Double, _ places: Int = 2) -> String { String(format: "%.\(places)f", value) }
        var checks: [TargetCheck] = []

        // Cost per packet, in ns through the restore wrapper (bench/README.md), lowest round.
        let perPacket: [(scenario: String, label: String, most: Double)] = [
            ("ipv4_tcp_conn_hit", "IPv4 TCP connection-table hit", 45),
            ("ipv6_tcp_conn_hit", "IPv6 TCP hit", 50),
            ("ipv4_in_ipv6_conn_hit", "4in6 hit", 50),
            ("ipv4_udp_conn_hit", "UDP hit", 50),
            ("ipv4_port_wildcard_conn_hit", "port-wildcard hit", 50),
            ("ipv4_not_vip_pass", "not a VIP: XDP_PASS", 20),
            ("ipv4_tcp_new_flow_lru_bypass", "ring lookup (lru_bypass)", 40),
            ("ipv4_tcp_syn_new_flow", "SYN with its table write", 110),
        ]
        for (name, label, most) in perPacket {
            let target = "≤ \(f(most, 0)) ns"
            if let ns = scenario(name)?.nsPerPacket {
                checks.append(TargetCheck(name: label, target: target, measured: "\(f(ns)) ns", met: ns <= most))
            } else {
                checks.append(TargetCheck(name: label, target: target, measured: "not measured", met: nil))
            }
        }

        let one = r.live.queues.first { $0.queues == 1 && $0.valid }
        if let one, let mpps = one.mpps, let baseline = one.baselineMpps, baseline > 0 {
            let ratio = mpps / baseline
            checks.append(TargetCheck(name: "1 queue vs baseline (live)", target: "≥ 0.7× baseline",
                                      measured: "\(f(ratio))× (\(f(mpps, 3)) Mpps vs \(f(baseline, 3)) Mpps)", met: ratio >= 0.7))
        } else {
            checks.append(TargetCheck(name: "1 queue vs baseline (live)", target: "≥ 0.7× baseline", measured: "not measured", met: nil))
        }

        if let two = r.live.queues.first(where: { $0.queues == 2 }), let scaling = two.scaling, two.valid, one != nil {
            checks.append(TargetCheck(name: "2 queues vs 1 queue (live)", target: "≥ 1.8×",
                                      measured: "\(f(scaling))× (\(f(two.mpps ?? 0, 3)) Mpps vs \(f((two.mpps ?? 0) / scaling, 3)) Mpps)", met: scaling >= 1.8))
        } else {
            checks.append(TargetCheck(name: "2 queues vs 1 queue (live)", target: "≥ 1.8×", measured: "not measured", met: nil))
        }

        if let ring = r.controlPlane["maglev_65537_1000_reals_ms"] {
            checks.append(TargetCheck(name: "Maglev ring 65537, 1,000 reals", target: "< 5 ms", measured: "\(f(ring.value, 3)) ms", met: ring.value < 5))
        } else {
            checks.append(TargetCheck(name: "Maglev ring 65537, 1,000 reals", target: "< 5 ms", measured: "not measured", met: nil))
        }

        if let apply = r.controlPlane["apply_10000_vips_100_reals_s"] {
            checks.append(TargetCheck(name: "apply 10,000 VIPs × 100 reals", target: "< 2 s", measured: "\(f(apply.value, 3)) s", met: apply.value < 2))
        } else {
            checks.append(TargetCheck(name: "apply 10,000 VIPs × 100 reals", target: "< 2 s", measured: "not measured", met: nil))
        }
        return checks
    }
}
