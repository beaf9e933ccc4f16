import PetrelAdmin

extension HealthService {
    /// petrel_real_up, transitions, probe counts and the forwarder's counters.
    func metrics(into page: inout MetricsPage) {
        let document = document()
        let reals = document.reals.filter { $0.state != "unchecked" }
        func labels(_ real: RealHealthDocument) -> [(String, String)] { [("vip", real.vip), ("real", real.real)] }
        page.gauge("petrel_real_up", "1 while the real passes its health check for the VIP, 0 while it is down.",
                   reals.map { (labels($0), $0.state == "up" ? 1 : 0) })
        page.counter("petrel_real_health_transitions_total", "Health state changes of a real of a VIP, by the state entered.",
                     reals.flatMap { [(labels($0) + [("to", "down")], UInt64($0.wentDown)), (labels($0) + [("to", "up")], UInt64($0.wentUp))] })
        page.gauge("petrel_vip_in_service", "1 while the VIP has a real in service (weight > 0 and not down); 0: its packets are dropped.",
                   Set(document.reals.map(\.vip)).sorted().map { vip in
                       ([("vip", vip)], document.vipsWithoutService.contains(vip) ? 0 : 1)
                   })
        page.counter("petrel_health_probes_total", "Health-check probes by result.",
                     [([("result", "passed")], document.probesPassed), ([("result", "failed")], document.probesFailed)])
        page.counter("petrel_health_probes_delayed_total", "Probes that waited because max_in_flight others were running.",
                     [([], document.probesDelayed)])
        page.gauge("petrel_health_probes_in_flight", "Probes running now.", [([], Double(document.probesInFlight))])
        if let forwarder = document.forwarder {
            page.counter("petrel_health_forward_packets_total", "Probe packets seen by the tc forwarder, by outcome.",
                         forwarder.sorted { $0.key < $1.key }.map { ([("reason", $0.key)], $0.value) })
        }
    }
}
