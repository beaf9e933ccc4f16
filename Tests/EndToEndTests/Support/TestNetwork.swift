import Foundation
import Petrel
import PetrelBPF

/// The fixed address plan of scripts/topology.sh (see scripts/README.md).
enum Plan {
    static let vip4 = IPAddress("198.18.100.1")!
    static let vip4in6 = IPAddress("198.18.100.2")!
    static let vip6 = IPAddress("fd50:0:100::1")!
    static let client4 = IPAddress("198.18.1.2")!
    static let client6 = IPAddress("fd50:0:1::2")!
    static let reals4 = (1...3).map { IPAddress("198.18.3.1\($0)")! }
    static let reals6 = (1...3).map { IPAddress("fd50:0:3::1\($0)")! }
    /// The name real N's server answers with.
    static let realNames = ["real1", "real2", "real3"]
    static let routerMAC = MACAddress(0x02, 0, 0, 0, 0x02, 0x01)
    static let interface = "eth0"

    /// The server name of a real address, e.g. "real2" for 198.18.3.12.
    static func name(of real: IPAddress) -> String? {
        if let i = reals4.firstIndex(of: real) { return realNames[i] }
        if let i = reals6.firstIndex(of: real) { return realNames[i] }
        return nil
    }
}

/// One test's world: the namespaces of scripts/topology.sh, a testhost server in
/// every real, Petrel's balancer on the LB's eth0 and a decapsulator on each
/// real's eth0. Everything lives until `destroy()`, which deletes the namespaces
/// (and with them the XDP attachments) and stops the servers.
final class TestNetwork {
    private static let counter = Counter()

    let prefix: String
    /// The library's balancer on the LB's eth0; nil when the test runs petreld there instead.
    private(set) var balancer: LoadBalancer!
    /// Kept so the decapsulators' maps stay owned by this process for the test.
    private(set) var decapsulators: [Decapsulator] = []
    private var servers: [Command.Running] = []

    var clientNamespace: String { "\(prefix)-client" }
    var lbNamespace: String { "\(prefix)-lb" }

    /// Builds the network. With `vips`, the library's balancer serves them on the
    /// LB; with nil, the LB namespace is left for petreld.
    init(vips: [Vip]?) throws {
        prefix = "e2e\(getpid())n\(TestNetwork.counter.next())"
        try Command.run([Command.script("topology.sh"), "create", prefix], timeout: 60)
        do {
            try startServers()
            if let vips {
                let balancer = try LoadBalancer(
                    limits: DataPlaneLimits(maxVips: 16, maxReals: 64, ringSize: 65537, connectionTableSize: 65536), pinPath: nil)
                try NetworkNamespace.run(lbNamespace) {
                    let eth0 = try NetworkInterface(named: Plan.interface)
                    try balancer.configureForwarding(
                        ForwardingSettings(interfaceMAC: try eth0.mac(), nextHopMAC: Plan.routerMAC, mtu: try eth0.mtu()))
                    try balancer.apply(vips)
                    try balancer.attach(interface: Plan.interface, mode: .native)
                }
                self.balancer = balancer
            }
            for n in 0..<3 {
                let decapsulator = try Decapsulator(localAddresses: [Plan.reals4[n], Plan.reals6[n]])
                try NetworkNamespace.run("\(prefix)-real\(n + 1)") {
                    try decapsulator.attach(interface: Plan.interface, mode: .native)
                }
                decapsulators.append(decapsulator)
            }
        } catch {
            destroy()
            throw error
        }
    }

    /// Stops the servers and deletes every namespace of this network.
    func destroy() {
        for server in servers { server.stop() }
        servers = []
        // Killed servers leave their pid files behind.
        for name in Plan.realNames { unlink("/tmp/\(prefix)-\(name).pid") }
        _ = try? Command.run([Command.script("topology.sh"), "destroy", prefix], timeout: 30)
    }

    private func startServers() throws {
        var pidfiles: [String] = []
        for (n, name) in Plan.realNames.enumerated() {
            let pidfile = "/tmp/\(prefix)-\(name).pid"
            unlink(pidfile)
            servers.append(try Command.Running([
                "ip", "netns", "exec", "\(prefix)-real\(n + 1)", "python3", Command.script("testhost.py"),
                "serve", "--name", name, "--pidfile", pidfile,
            ]))
            pidfiles.append(pidfile)
        }
        let deadline = Date().addingTimeInterval(10)
        while !pidfiles.allSatisfy({ FileManager.default.fileExists(atPath: $0) }) {
            guard Date() < deadline else { throw Command.Failure(command: ["testhost.py", "serve"], status: -1, output: "servers not listening after 10 s") }
            usleep(20_000)
        }
    }

    // MARK: The client

    /// Single-shot mode: `count` exchanges, each from its own source port.
    func exchange(vip: IPAddress, port: UInt16, proto: L4Protocol, count: Int, firstSourcePort: Int? = nil) throws -> ClientReport {
        var arguments = ["--count", "\(count)", "--detail", "--max-failures", "\(count)"]
        if let firstSourcePort { arguments += ["--source-port", "\(firstSourcePort)"] }
        let output = try Command.inNamespace(clientNamespace, client(vip, port, proto) + arguments, timeout: 60)
        return try decode(ClientReport.self, output)
    }

    /// Hold mode, started in the background: `connections` flows asked every `interval` seconds, `rounds` times.
    func startHolding(vip: IPAddress, port: UInt16, proto: L4Protocol, connections: Int, rounds: Int, interval: Double) throws -> Command.Running {
        try Command.Running(["ip", "netns", "exec", clientNamespace] + client(vip, port, proto) + [
            "--hold", "--count", "\(connections)", "--rounds", "\(rounds)", "--interval", "\(interval)",
            "--timeout", "1", "--max-failures", "\(connections)",
        ])
    }

    func finishHolding(_ running: Command.Running) throws -> HoldReport {
        let result = try running.wait(timeout: 60)
        guard result.status == 0 else { throw Command.Failure(command: running.arguments, status: result.status, output: result.error) }
        return try decode(HoldReport.self, result.output)
    }

    private func client(_ vip: IPAddress, _ port: UInt16, _ proto: L4Protocol) -> [String] {
        ["python3", Command.script("testhost.py"), "client", "--vip", "\(vip)", "--port", "\(port)",
         "--proto", proto.rawValue, "--compact"]
    }

    private func decode<T: Decodable>(_ type: T.Type, _ output: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(type, from: Data(output.utf8))
    }

    // MARK: Counters outside Petrel

    /// A line of /proc/net/snmp-style counters in the client's namespace, e.g. ("Tcp", "OutSegs").
    func clientCounter(_ group: String, _ name: String) throws -> UInt64 {
        let text = try Command.inNamespace(clientNamespace, ["cat", "/proc/net/snmp"])
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("\(group):") }
        guard lines.count == 2 else { throw Command.Failure(command: ["cat", "/proc/net/snmp"], status: 0, output: "no \(group) lines") }
        let names = lines[0].split(separator: " ").dropFirst()
        let values = lines[1].split(separator: " ").dropFirst()
        guard let i = names.firstIndex(of: Substring(name)) else { throw Command.Failure(command: ["cat", "/proc/net/snmp"], status: 0, output: "no \(group) \(name)") }
        return UInt64(values[i]) ?? 0
    }

    /// An IPv6 counter of /proc/net/snmp6 in the client's namespace, e.g. "Udp6OutDatagrams".
    func clientCounter6(_ name: String) throws -> UInt64 {
        let text = try Command.inNamespace(clientNamespace, ["cat", "/proc/net/snmp6"])
        for line in text.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count == 2, fields[0] == name { return UInt64(fields[1]) ?? 0 }
        }
        throw Command.Failure(command: ["cat", "/proc/net/snmp6"], status: 0, output: "no \(name)")
    }

    /// A statistic of the LB namespace's eth0, e.g. "rx_packets".
    func lbInterfaceCounter(_ name: String) throws -> UInt64 {
        let text = try Command.inNamespace(lbNamespace, ["cat", "/sys/class/net/\(Plan.interface)/statistics/\(name)"])
        return UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }
}

/// Builds a network, runs `body`, and destroys the network even when `body` throws.
func withTestNetwork<T>(vips: [Vip]?, _ body: (TestNetwork) throws -> T) throws -> T {
    let network = try TestNetwork(vips: vips)
    defer { network.destroy() }
    return try withExtendedLifetime(network) { try body(network) }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}

// MARK: testhost.py's reports

/// testhost.py client, single-shot mode.
struct ClientReport: Decodable {
    struct Exchange: Decodable {
        let index: Int
        let sourcePort: Int
        let real: String?
        let error: String?
    }
    let sent: Int
    let answered: Int
    let byReal: [String: Int]
    let failed: Int
    let exchanges: [Exchange]

    func count(_ real: String) -> Int { byReal[real] ?? 0 }
}

/// testhost.py client --hold.
struct HoldReport: Decodable {
    struct Connection: Decodable {
        let index: Int
        let sourcePort: Int
        let reals: [String?]
        let sameReal: Bool
        let failedRounds: [Int]
    }
    let connections: Int
    let rounds: Int
    let answered: Int
    let byReal: [String: Int]
    let allSameReal: Bool
    let anyRoundFailed: Bool
    let changedReal: Int
    let perConnection: [Connection]
}
