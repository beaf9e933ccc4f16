import Foundation
import Petrel
import PetrelConfig
import PetrelHealth
import Testing

/// `health_check` sections: merging over the level above, every rule with its field, round trips.
@Suite("HealthCheck config")
struct HealthCheckConfigTests {
    static let vip80 = VipKey(address: IPAddress("198.18.100.1")!, port: 80, proto: .tcp)

    @Test("Top level, VIP and real merge, each over the one above")
    func merging() throws {
        let config = try ConfigLoader.parse(yaml: minimalYAML + """
            health_check:
              type: tcp
              interval: 1s
              timeout: 500ms
              fall: 4
              max_in_flight: 64
            vips:
              - address: 198.18.100.1
                port: 80
                protocol: tcp
                health_check:
                  type: http
                  path: /healthz
                  expect_status: [200, 204]
                reals:
                  - address: 198.18.3.11
                  - address: 198.18.3.12
                    health_check: {expect_status: 503, host: www.example}
              - address: 198.18.100.2
                port: 0
                protocol: tcp
                health_check: {port: 8080, interval: 1500ms}
                reals:
                  - address: 198.18.3.13
                    health_check: {type: none}
            """, fileName: "test.yaml")
        let policy = config.healthChecks
        #expect(policy.maxInFlight == 64)
        #expect(policy.defaultCheck == HealthCheck(kind: .tcp, intervalMilliseconds: 1000, timeoutMilliseconds: 500, rise: 2, fall: 4))
        let http = policy.check(vip: Self.vip80, real: IPAddress("198.18.3.11")!)
        #expect(http.kind == .http(HealthCheck.HTTP(path: "/healthz", expectedStatus: [200, 204])))
        #expect(http.intervalMilliseconds == 1000 && http.fall == 4, "inherited from the top level")
        let real2 = policy.check(vip: Self.vip80, real: IPAddress("198.18.3.12")!)
        #expect(real2.kind == .http(HealthCheck.HTTP(path: "/healthz", expectedStatus: [503], host: "www.example")))
        let any = VipKey(address: IPAddress("198.18.100.2")!, port: 0, proto: .tcp)
        #expect(policy.vipChecks[any]?.port == 8080 && policy.vipChecks[any]?.intervalMilliseconds == 1500)
        #expect(policy.check(vip: any, real: IPAddress("198.18.3.13")!).kind == .none)
        // An API-added real and an unknown VIP get their VIP's check and the default.
        #expect(policy.check(vip: Self.vip80, real: IPAddress("198.18.3.99")!).kind == http.kind)
        #expect(policy.check(vip: VipKey(address: IPAddress("198.18.100.9")!, port: 80, proto: .udp), real: IPAddress("198.18.3.11")!).kind == .tcp)
        #expect(policy.targets(for: config.vips).count == 2, "the real with type none is not a target")
        // Rendering keeps every level.
        #expect(try ConfigLoader.parse(yaml: config.yaml, fileName: "rendered.yaml") == config)
    }

    @Test("Without any health_check nothing is checked")
    func absent() throws {
        let config = try ConfigLoader.parse(yaml: minimalYAML + "vips: []\n", fileName: "test.yaml")
        #expect(!config.healthChecks.anyEnabled && config.healthChecks.defaultCheck == .none)
    }

    static let vipHead = minimalYAML + """
        vips:
          - address: 198.18.100.1
            port: 80
            protocol: tcp

        """

    @Test("Each mistake in a health_check is reported once, at its field and line", arguments: [
        BadConfig("unknown check type", minimalYAML + "health_check: {type: icmp}\n",
                  field: "health_check.type", line: 4, "must be one of none, tcp, http, udp, got \"icmp\""),
        BadConfig("interval without a unit", minimalYAML + "health_check: {type: tcp, interval: 2}\n",
                  field: "health_check.interval", line: 4, "must be a duration such as 2s, 1.5s or 500ms"),
        BadConfig("interval too short", minimalYAML + "health_check: {type: tcp, interval: 10ms}\n",
                  field: "health_check.interval", line: 4, "between 50 ms and 3600 s, got \"10ms\""),
        BadConfig("timeout longer than interval", minimalYAML + "health_check: {type: tcp, interval: 1s, timeout: 2s}\n",
                  field: "health_check.timeout", line: 4, "timeout 2000 ms is longer than interval 1000 ms"),
        BadConfig("fall zero", minimalYAML + "health_check: {type: tcp, fall: 0}\n",
                  field: "health_check.fall", line: 4, "between 1 and 100"),
        BadConfig("path on a tcp check", minimalYAML + "health_check: {type: tcp, path: /x}\n",
                  field: "health_check.path", line: 4, "applies to type http only; this check is tcp"),
        BadConfig("payload on an http check", minimalYAML + "health_check: {type: http, payload: x}\n",
                  field: "health_check.payload", line: 4, "applies to type udp only; this check is http"),
        BadConfig("status code out of range", minimalYAML + "health_check: {type: http, expect_status: [200, 700]}\n",
                  field: "health_check.expect_status[1]", line: 4, "between 100 and 599"),
        BadConfig("relative path", minimalYAML + "health_check: {type: http, path: healthz}\n",
                  field: "health_check.path", line: 4, "must be a URL path starting with /"),
        BadConfig("max_in_flight too large", minimalYAML + "health_check: {type: tcp, max_in_flight: 10000}\n",
                  field: "health_check.max_in_flight", line: 4, "between 1 and 4096"),
        BadConfig("max_in_flight in a VIP", vipHead + "    health_check: {max_in_flight: 4}\n",
                  field: "vips[0].health_check.max_in_flight", line: 8, "unknown key"),
        BadConfig("misspelt key in a real's check", vipHead + """
                reals:
                  - address: 198.18.3.11
                    health_check: {intervall: 1s}

            """, field: "vips[0].reals[0].health_check.intervall", line: 10, "did you mean interval?"),
        BadConfig("a VIP on every port without a check port", minimalYAML + """
            health_check: {type: tcp}
            vips:
              - address: 198.18.100.2
                port: 0
                protocol: tcp

            """, field: "vips[0]", line: 6, "needs a port: add health_check.port"),
    ])
    func reportsTheMistake(_ bad: BadConfig) {
        let found = issues(in: bad.yaml)
        #expect(found.count == 1, "expected exactly one issue, got:\n\(ConfigError(issues: found))")
        #expect(found.first?.field == bad.field)
        #expect(found.first?.line == bad.line)
        #expect(found.first?.message.contains(bad.message) == true, "message was: \(found.first?.message ?? "none")")
    }
}
