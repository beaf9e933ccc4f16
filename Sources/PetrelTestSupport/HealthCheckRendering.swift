import Petrel
import PetrelConfig
import PetrelHealth

// MARK: - Rendering

extension PetrelConfiguration {
    /// A `health_check` section with every setting spelled out, indented by `indent`.
    static func healthCheckLines(_ check: HealthCheck, indent: String, maxInFlight: Int? = nil) -> [String] {
        var lines = ["\(indent)health_check:", "\(indent)  type: \(check.kind.name)"]
        if let port = check.port { lines.append("\(indent)  port: \(port)") }
        lines.append("\(indent)  interval: \(check.intervalMilliseconds)ms")
        lines.append("\(indent)  timeout: \(check.timeoutMilliseconds)ms")
        lines.append("\(indent)  rise: \(check.rise)")
        lines.append("\(indent)  fall: \(check.fall)")
        switch check.kind {
        case .http(let http):
            lines.append("\(indent)  path: \(quoted(http.path))")
            lines.append("\(indent)  expect_status: [\(http.expectedStatus.map(String.init).joined(separator: ", "))]")
            if let host = http.host { lines.append("\(indent)  host: \(quoted(host))") }
        case .udp(let udp):
            lines.append("\(indent)  payload: \(quoted(String(decoding: udp.payload, as: UTF8.self)))")
        case .none, .tcp:
            break
        }
        if let maxInFlight { lines.append("\(indent)  max_in_flight: \(maxInFlight)") }
        return lines
    }
}
