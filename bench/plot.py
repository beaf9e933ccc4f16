#!/usr/bin/python3
"""Draws petrel-bench's results: Mpps per receive-queue count (Petrel and the
baseline) and ns per packet per scenario (Petrel next to the baseline).

Usage: plot.py RESULTS.json OUTPUT.png   (Debian's python3-matplotlib)
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(results_path, png_path):
    with open(results_path) as f:
        results = json.load(f)

    figure, (rate, cost) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [1, 1.6]})
    machine = results["machine"]
    figure.suptitle(
        f"petrel-bench ({results['mode']}) · {machine['date'][:10]} · kernel {machine['kernel']} · "
        f"{machine['cpu_model']} · {machine['cores']} cores · {machine['packet_size']}-byte frames"
    )

    draw_rate(rate, results["live"])
    draw_cost(cost, results["scenarios"])

    figure.tight_layout()
    figure.savefig(png_path, dpi=110)


def draw_rate(axes, live):
    axes.set_title("Live rate: veth, native XDP, one generator per queue")
    axes.set_xlabel("receive queues")
    axes.set_ylabel("Mpps")
    queues = [q for q in live.get("queues", []) if q.get("mpps") is not None]
    if not live.get("ran") or not queues:
        axes.text(0.5, 0.5, "not measured", ha="center", va="center", transform=axes.transAxes)
        return
    counts = [q["queues"] for q in queues]
    axes.plot(counts, [q["mpps"] for q in queues], marker="o", label="Petrel")
    axes.plot(counts, [q.get("baseline_mpps") or 0 for q in queues], marker="s", linestyle="--", label="baseline (XDP_TX)")
    for q in queues:
        axes.annotate(f"{q['mpps']:.2f}", (q["queues"], q["mpps"]), textcoords="offset points", xytext=(0, 6), ha="center")
    axes.set_xticks(counts)
    axes.set_ylim(bottom=0)
    axes.legend()
    axes.grid(alpha=0.3)


def draw_cost(axes, scenarios):
    axes.set_title("Cost per packet (BPF_PROG_TEST_RUN)")
    axes.set_ylabel("ns / packet")
    measured = [s for s in scenarios if s.get("ns_per_packet") is not None]
    if not measured:
        axes.text(0.5, 0.5, "not measured", ha="center", va="center", transform=axes.transAxes)
        return
    positions = range(len(measured))
    width = 0.4
    petrel = axes.bar([p - width / 2 for p in positions], [s["ns_per_packet"] for s in measured], width, label="Petrel")
    axes.bar([p + width / 2 for p in positions], [s.get("baseline_ns_per_packet") or 0 for s in measured], width, label="baseline (XDP_TX)")
    for bar, s in zip(petrel, measured):
        label = f"{s['ratio_to_baseline']:.1f}×" if s.get("ratio_to_baseline") else ""
        if not s.get("valid", False):
            label += " INVALID"
            bar.set_hatch("//")
        axes.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), textcoords="offset points",
                      xytext=(0, 3), ha="center", fontsize=8)
    axes.set_xticks(list(positions))
    axes.set_xticklabels([s["name"] for s in measured], rotation=30, ha="right", fontsize=8)
    axes.legend()
    axes.grid(axis="y", alpha=0.3)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
