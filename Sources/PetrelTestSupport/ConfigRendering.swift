import Petrel
import PetrelConfig
import PetrelHealth

extension PetrelConfiguration {
    /// The configuration as a config file, every setting spelled out (defaults
    /// included, `mtu` and the optional endpoints only when set). Parsing the
    /// text gives back an equal value when the configuration is valid.
    public var yaml: String {
        var lines: [String] = []
        lines.append("interface: \(Self.scalar(interface))")
        lines.append("attach_mode: \(attachMode.rawValue)")
        lines.append("next_hop:")
        switch nextHop {
        case .mac(let mac): lines.append("  mac: \(Self.quoted(mac.description))")
        case .gateway(let address): lines.append("  gateway: \(Self.scalar(address))")
        }
        lines.append("encapsulation:")
        lines.append("  source_v4: \(Self.scalar(encapSourceV4))")
        lines.append("  source_v6: \(Self.scalar(encapSourceV6))")
        lines.append("  gue_port: \(guePort)")
        lines.append("ring_size: \(ringSize)")
        lines.append("connection_table_size: \(connectionTableSize)")
        lines.append("max_vips: \(maxVips)")
        lines.append("max_reals: \(maxReals)")
        if let mtu { lines.append("mtu: \(mtu)") }
        lines.append("syn_flood_threshold: \(synFloodThreshold)")
        lines.append("icmp:")
        lines.append("  echo_reply: \(icmpEchoReply)")
        lines.append("  too_big: \(icmpTooBig)")
        lines.append("  rate_limit: \(icmpRateLimit)")
        lines.append("pin_path: \(Self.scalar(pinPath))")
        lines.append("admin:")
        lines.append("  socket: \(Self.scalar(adminSocket))")
        if let adminTCP { lines.append("  tcp: \(Self.scalar(adminTCP.description))") }
        if let metricsListen {
            lines.append("metrics:")
            lines.append("  listen: \(Self.scalar(metricsListen.description))")
        }
        if healthChecks.defaultCheck != .none || healthChecks.maxInFlight != HealthCheck.Defaults.maxInFlight {
            lines += Self.healthCheckLines(healthChecks.defaultCheck, indent: "", maxInFlight: healthChecks.maxInFlight)
        }
        if let bgp { lines += bgp.yamlLines }
        if vips.isEmpty {
            lines.append("vips: []")
        } else {
            lines.append("vips:")
            for vip in vips {
                lines.append("  - address: \(Self.scalar(vip.key.address))")
                lines.append("    port: \(vip.key.port)")
                lines.append("    protocol: \(vip.key.proto.rawValue)")
                if !vip.flags.isEmpty { lines.append("    flags: [\(vip.flags.names.joined(separator: ", "))]") }
                if let check = healthChecks.vipChecks[vip.key] { lines += Self.healthCheckLines(check, indent: "    ") }
                if vip.reals.isEmpty {
                    lines.append("    reals: []")
                } else {
                    lines.append("    reals:")
                    for real in vip.reals {
                        lines.append("      - address: \(Self.scalar(real.address))")
                        lines.append("        weight: \(real.weight)")
                        if real.encapsulation != .ipip { lines.append("        encapsulation: \(real.encapsulation.rawValue)") }
                        if let id = real.quicServerId { lines.append("        quic_server_id: \(id)") }
                        if let check = healthChecks.realChecks[vip.key]?[real.address] {
                            lines += Self.healthCheckLines(check, indent: "        ")
                        }
                    }
                }
                if !vip.sourceRoutes.isEmpty {
                    lines.append("    source_routes:")
                    for route in vip.sourceRoutes {
                        lines.append("      - prefix: \(Self.quoted(route.prefix.description))")
                        lines.append("        real: \(Self.scalar(route.real))")
                    }
                }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: Scalars

    /// IPv6 addresses are always quoted: `fd50::` would otherwise end in a mapping colon.
    private static func scalar(_ address: IPAddress) -> String {
        address.family == .ipv6 ? quoted(address.description) : address.description
    }

    /// Text as a plain scalar when it reads back as the same string, quoted otherwise.
    private static func scalar(_ text: String) -> String {
        let safe = text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._/-:".contains($0)) }
        guard safe, !text.isEmpty, !text.contains(": "), !text.hasSuffix(":"), !text.hasPrefix("-"),
              ConfigLoader.readsAsPlainString(text)
        else { return quoted(text) }
        return text
    }

    static func quoted(_ text: String) -> String {
        var escaped = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            case "\t": escaped += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    escaped += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
                } else {
                    escaped.unicodeScalars.append(scalar)
                }
            }
        }
        return "\"\(escaped)\""
    }
}
