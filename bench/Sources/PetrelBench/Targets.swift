import Foundation

/// The targets of the benchmark issue, checked against one run's figures.
/// A figure from an invalid measurement never meets a target.
enum Targets {
    static func check(_ r: BenchResults) -> [TargetCheck] {
        func scenario(_ name: String) -> ScenarioResult? { r.scenarios.first { $0.name == name && $0.valid } }
        func f(_ value: Double, _ places: Int = 2) -> String { String(format: "%.\(places)f", value) }
        var checks: [TargetCheck] = []

        let hit = scenario("ipv4_tcp_conn_hit")
        if let ratio = hit?.ratioToBaseline {
            checks.append(TargetCheck(name: "connection-table hit vs baseline", target: "≤ 2.0× baseline",
                                      measured: "\(f(ratio))× (\(f(hit!.nsPerPacket!)) ns vs \(f(hit!.baselineNsPerPacket!)) ns)", met: ratio <= 2.0))
        } else {
            checks.append(TargetCheck(name: "connection-table hit vs baseline", target: "≤ 2.0× baseline", measured: "not measured", met: nil))
        }

        for name in ["ipv4_tcp_new_flow_lru_bypass", "ipv4_tcp_syn_new_flow"] {
            let label = name == "ipv4_tcp_syn_new_flow" ? "new flow (SYN) vs hit" : "new flow (lru_bypass) vs hit"
            if let flow = scenario(name)?.nsPerPacket, let hitNs = hit?.nsPerPacket {
                let ratio = flow / hitNs
                checks.append(TargetCheck(name: label, target: "≤ 1.3× hit", measured: "\(f(ratio))× (\(f(flow)) ns vs \(f(hitNs)) ns)", met: ratio <= 1.3))
            } else {
                checks.append(TargetCheck(name: label, target: "≤ 1.3× hit", measured: "not measured", met: nil))
            }
        }

        if let two = r.live.queues.first(where: { $0.queues == 2 }), let scaling = two.scaling, two.valid,
           r.live.queues.first(where: { $0.queues == 1 })?.valid == true {
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
