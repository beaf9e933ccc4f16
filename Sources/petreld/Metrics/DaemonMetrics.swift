import Foundation
import Petrel
import PetrelBPF

/// The content of `/metrics`: every family petreld exposes, one section per
/// concern. docs/operating.md lists each metric; keep the two in step.
///
/// Families are split so that `sum()` over one of them means something:
/// packet outcomes add up to the packets received, pass and drop reasons add up
/// to their outcome, and events (facts about how a real was chosen) stand apart.
struct DaemonMetrics {
    let daemon: Daemon

    /// Renders the page; runs on the daemon's queue.
    func render() -> String {
        var page = MetricsPage()
        build(&page)
        config(&page)
        if let stats = try? daemon.balancer.stats() {
            dataPlane(stats, &page)
            vips(stats, &page)
            reals(stats, &page)
        }
        interface(&page)
        flowLog(&page)
        captures(&page)
        daemon.health.metrics(into: &page)
        daemon.bgpMetrics(into: &page)  // BGP/Daemon+BGP.swift
        ProcessMetrics.read()?.render(into: &page)
        return page.text
    }

    // MARK: Sections

    private func build(_ page: inout MetricsPage) {
        let tag = daemon.balancer.program.tag.map { String(format: "%02x", $0) }.joined()
        page.gauge("petrel_build_info", "Always 1; labels say which petreld and which loaded BPF program (the kernel's tag) run.",
                   [([("version", PetrelVersion.string), ("program_tag", tag)], 1)])
    }

    private func captures(_ page: inout MetricsPage) {
        let totals = daemon.captures.totals
        page.gauge("petrel_captures_running", "Packet captures running now (`petrel capture`), of \(CaptureSlots.count) slots.",
                   [([], Double(daemon.captures.running))])
        page.counter("petrel_captures_total", "Packet captures started, and refused because every slot was in use.",
                     [([("result", "started")], UInt64(totals.started)), ([("result", "refused")], UInt64(totals.refused))])
        page.counter("petrel_capture_packets_total", "Packets written by ended captures.", [([], totals.packets)])
        page.counter("petrel_capture_lost_packets_total",
                     "Packets ended captures selected but lost: the data plane's ring was full, or the client read too slowly.",
                     [([("cause", "ring_full")], totals.lostRingFull), ([("cause", "slow_client")], totals.lostSlowClient)])
    }

    private func config(_ page: inout MetricsPage) {
        let status = daemon.status()
        page.gauge("petrel_config_generation", "Config generation: 1 at start, +1 per successful reload.", [([], Double(status.generation))])
        page.counter("petrel_config_reloads_total", "Reloads of the config file by result.",
                     [([("result", "success")], UInt64(status.reloadsSucceeded)), ([("result", "failure")], UInt64(status.reloadsFailed))])
        page.gauge("petrel_attached", "1 while the balancer is attached to the interface.",
                   [([("interface", status.interface)], status.attached ? 1 : 0)])
        page.gauge("petrel_adopted_pinned_maps", "1 when this petreld adopted maps pinned by an earlier one.", [([], status.adopted ? 1 : 0)])
        page.gauge("petrel_vips", "VIPs served.", [([], Double(status.vips))])
    }

    private func dataPlane(_ stats: Stats, _ page: inout MetricsPage) {
        let counters = StatReason.allCases.map { DataPlaneCounter($0, stats[$0]) }
        page.counter("petrel_received_packets_total", "Packets the data plane saw (every packet, whatever became of it).",
                     counters.filter { $0.kind == .received }.map { ([], $0.value) })
        var outcomes: [String: UInt64] = ["forward": 0, "reply": 0, "pass": 0, "drop": 0]
        for counter in counters {
            if let outcome = counter.kind.outcome { outcomes[outcome, default: 0] += counter.value }
        }
        page.counter("petrel_packets_total",
                     "Packets by outcome: forward (sent on with XDP_TX), reply (answered with ICMP, XDP_TX), pass (to the kernel), drop. Sums to petrel_received_packets_total.",
                     ["forward", "reply", "pass", "drop"].map { ([("outcome", $0)], outcomes[$0] ?? 0) })
        page.counter("petrel_replied_packets_total", "Packets answered with ICMP by the data plane, by reason. Sums to petrel_packets_total{outcome=\"reply\"}.",
                     counters.filter { $0.kind == .reply }.map { ([("reason", $0.label)], $0.value) })
        page.counter("petrel_passed_packets_total", "Packets passed to the kernel, by reason. Sums to petrel_packets_total{outcome=\"pass\"}.",
                     counters.filter { $0.kind == .pass }.map { ([("reason", $0.label)], $0.value) })
        page.counter("petrel_dropped_packets_total", "Packets dropped, by reason. Sums to petrel_packets_total{outcome=\"drop\"}.",
                     counters.filter { $0.kind == .drop }.map { ([("reason", $0.label)], $0.value) })
        page.counter("petrel_events_total", "Facts about how reals were chosen, by event; each counts on its own (do not sum them).",
                     counters.filter { $0.kind == .event }.map { ([("event", $0.label)], $0.value) })
    }

    private func vips(_ stats: Stats, _ page: inout MetricsPage) {
        let vips = stats.vips.sorted { $0.key < $1.key }
        page.counter("petrel_vip_forwarded_packets_total", "Packets forwarded per VIP.",
                     vips.map { (DaemonMetrics.labels($0.key), $0.value.packets) })
        page.counter("petrel_vip_forwarded_bytes_total", "Bytes forwarded per VIP, as received (before encapsulation).",
                     vips.map { (DaemonMetrics.labels($0.key), $0.value.bytes) })
        let weights = daemon.balancer.vips.sorted { $0.key < $1.key }.flatMap { vip in
            vip.reals.sorted { $0.address < $1.address }.map { real in
                (DaemonMetrics.labels(vip.key) + [("real", "\(real.address)")], Double(real.weight))
            }
        }
        page.gauge("petrel_vip_real_weight", "Each real's weight in each VIP (0: draining): which reals serve which VIP.", weights)
    }

    /// The data plane counts per real, not per (VIP, real): a real serving several
    /// VIPs has one series, summed over them (see petrel_vip_real_weight for which VIPs).
    private func reals(_ stats: Stats, _ page: inout MetricsPage) {
        let reals = stats.reals.sorted { $0.key < $1.key }
        page.counter("petrel_real_forwarded_packets_total", "Packets forwarded per real, over every VIP it serves.",
                     reals.map { ([("real", "\($0.key)")], $0.value.packets) })
        page.counter("petrel_real_forwarded_bytes_total", "Bytes forwarded per real over every VIP it serves, as received (before encapsulation).",
                     reals.map { ([("real", "\($0.key)")], $0.value.bytes) })
    }

    /// What the interface failed to send: the data plane counts a packet as forwarded
    /// when it hands it to XDP_TX, so transmit failures show only here.
    private func interface(_ page: inout MetricsPage) {
        let name = daemon.config.interface
        guard let interface = try? NetworkInterface(named: name) else { return }
        let labels: MetricsPage.Labels = [("interface", name)]
        if let errors = interface.kernelStatistic("tx_errors") {
            page.counter("petrel_interface_transmit_errors_total", "The interface's transmit errors (sysfs tx_errors).", [(labels, errors)])
        }
        if let dropped = interface.kernelStatistic("tx_dropped") {
            page.counter("petrel_interface_transmit_dropped_total", "Packets the interface dropped on transmit (sysfs tx_dropped).", [(labels, dropped)])
        }
        // Drivers that run XDP natively count XDP_TX failures under names like
        // rx_queue_0_xdp_tx_errors (veth) or rx_xdp_tx_err (mlx5); summed over queues.
        let xdpTransmitErrors = ((try? interface.driverStatistics()) ?? []).filter { $0.name.contains("xdp_tx_err") }
        if !xdpTransmitErrors.isEmpty {
            page.counter("petrel_interface_xdp_transmit_errors_total",
                         "Packets the driver failed to send after XDP_TX (ethtool statistics *xdp_tx_err*, summed over queues; native mode only).",
                         [(labels, xdpTransmitErrors.reduce(0) { $0 + $1.value })])
        }
    }

    /// petreld's side of the flow log; the data plane's side is in petrel_events_total
    /// (flow_log_candidate, flow_log_emitted, flow_log_lost).
    private func flowLog(_ page: inout MetricsPage) {
        let (followers, counters) = daemon.flowLog.snapshot
        page.gauge("petrel_flow_log_followers", "Clients following the flow log now (GET /v1/flows, petrel flows --follow).",
                   [([], Double(followers))])
        page.counter("petrel_flow_log_follows_total", "Follow requests served.", [([], UInt64(counters.follows))])
        page.counter("petrel_flow_log_lines_total",
                     "Flow-log lines by result: sent to a follower, or dropped because that follower read too slowly.",
                     [([("result", "sent")], UInt64(counters.sent)), ([("result", "dropped")], UInt64(counters.dropped))])
    }

    // MARK: Labels

    /// A VIP's labels: `vip` as the CLI writes it, and its parts; a VIP that takes
    /// every port has `port="*"` in both.
    static func labels(_ key: VipKey) -> MetricsPage.Labels {
        [("vip", "\(key)"), ("protocol", key.proto.rawValue), ("address", "\(key.address)"), ("port", key.port == 0 ? "*" : "\(key.port)")]
    }
}

/// One data-plane counter, sorted into its family by its name's prefix
/// (`forward`, `reply_*`, `pass_*`, `drop_*`, `event_*`, `rx`), so new counters in
/// petrel_abi.h land in the right family without a change here.
struct DataPlaneCounter {
    enum Kind: Equatable {
        case received, forward, reply, pass, drop, event

        var outcome: String? {
            switch self {
            case .forward: "forward"
            case .reply: "reply"
            case .pass: "pass"
            case .drop: "drop"
            case .received, .event: nil
            }
        }
    }

    let kind: Kind
    /// The reason or event without its prefix: `too_big`, `new_connection`.
    let label: String
    let value: UInt64

    init(_ reason: StatReason, _ value: UInt64) {
        self.value = value
        let name = reason.name
        for (prefix, kind) in [("reply_", Kind.reply), ("pass_", .pass), ("drop_", .drop), ("event_", .event)] where name.hasPrefix(prefix) {
            self.kind = kind
            label = String(name.dropFirst(prefix.count))
            return
        }
        kind = name == "rx" ? .received : .forward
        label = name
    }
}
