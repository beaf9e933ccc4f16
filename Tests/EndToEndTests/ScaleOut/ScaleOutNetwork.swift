import Foundation
import Petrel
import PetrelAdmin

/// The network of scripts/scale-out/topology.sh: a client, a router running BIRD
/// with one ECMP route per VIP, `balancers` balancers each running petreld (which
/// runs its own BIRD), and the three reals of the usual plan. `destroy()` stops
/// every process in it and deletes its namespaces.
final class ScaleOutNetwork: Sendable {
    static let vip4 = IPAddress("198.18.100.1")!
    static let vip6 = IPAddress("fd50:0:100::1")!
    static let vip4in6 = IPAddress("198.18.100.2")!

    let prefix: String
    let balancers: Int
    let directory: String

    var clientNamespace: String { "\(prefix)-client" }
    var routerNamespace: String { "\(prefix)-router" }
    func namespace(ofBalancer i: Int) -> String { "\(prefix)-lb\(i)" }
    func admin(_ i: Int) -> AdminClient { AdminClient(socketPath: "\(directory)/lb\(i).sock", timeoutSeconds: 10) }
    /// The MAC of balancer i's eth0 (its link's plan: 02:00:00:00:1<i>:02).
    func mac(ofBalancer i: Int) -> [UInt8] { [0x02, 0, 0, 0, UInt8(0x10 + i), 0x02] }

    private static let counter = ScaleOutCounter()

    /// Builds the network and starts petreld on every balancer; returns once every
    /// balancer announces its VIPs and the router has `balancers` paths to each.
    init(balancers: Int = 3) throws {
        prefix = "so\(getpid() % 1_000_000)n\(ScaleOutNetwork.counter.next())"
        self.balancers = balancers
        directory = "/tmp/petrel-scaleout-\(prefix)"
        do {
            try script("topology.sh", ["create", prefix, "\(balancers)"], timeout: 90)
            for i in 1...balancers { try balancer("start", i) }
            for i in 1...balancers { try balancer("wait", i) }
            for vip in [Self.vip4, Self.vip6] { try waitForPaths(vip, balancers) }
        } catch {
            destroy()
            throw error
        }
    }

    func destroy() {
        _ = try? script("topology.sh", ["destroy", prefix], timeout: 60)
    }

    // MARK: Balancers and the router

    /// `balancer.sh COMMAND PREFIX I` (start, wait, stop, fail, restore).
    func balancer(_ command: String, _ i: Int, timeout: TimeInterval = 60) throws {
        try script("balancer.sh", [command, prefix, "\(i)"], timeout: timeout)
    }

    /// Next hops of the router's route to `vip`.
    func paths(_ vip: IPAddress) throws -> Int {
        let route = try Command.inNamespace(routerNamespace, ["ip", vip.family == .ipv4 ? "-4" : "-6", "route", "show", "\(vip)"])
        if route.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return 0 }
        let nexthops = route.components(separatedBy: "nexthop").count - 1
        return nexthops == 0 ? 1 : nexthops
    }

    /// Waits (polling every 10 ms, at most 20 s) until the router has `count` paths
    /// to `vip`; returns the seconds it took.
    @discardableResult
    func waitForPaths(_ vip: IPAddress, _ count: Int, since start: Date = Date()) throws -> TimeInterval {
        while try paths(vip) != count {
            guard Date().timeIntervalSince(start) < 20 else {
                throw Command.Failure(command: ["ip", "route", "show", "\(vip)"], status: -1,
                                      output: "the router has \(try paths(vip)) paths to \(vip), not \(count), after 20 s")
            }
            usleep(10_000)
        }
        return Date().timeIntervalSince(start)
    }

    // MARK: What the balancers say

    func status(_ i: Int) throws -> StatusDocument {
        try get(StatusDocument.self, i, "/v1/status")
    }

    func forwarded(_ i: Int) throws -> UInt64 {
        try get(StatsDocument.self, i, "/v1/stats").global["forward"] ?? 0
    }

    func explain(_ flow: Flow, on i: Int) throws -> ExplainDocument {
        let query = ["proto": flow.proto.rawValue, "src": "\(flow.source)", "sport": "\(flow.sourcePort)",
                     "dst": "\(flow.destination)", "dport": "\(flow.destinationPort)"]
        return try get(ExplainDocument.self, i, "/v1/explain", query: query)
    }

    /// The id of the XDP program attached to balancer i's eth0.
    func attachedProgramID(_ i: Int) throws -> UInt32 {
        let json = try Command.inNamespace(namespace(ofBalancer: i), ["ip", "-j", "link", "show", "eth0"])
        let links = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]]
        let xdp = links?.first?["xdp"] as? [String: Any]
        guard let id = ((xdp?["prog"] as? [String: Any])?["id"] as? NSNumber)?.uint32Value else {
            throw Command.Failure(command: ["ip", "link", "show", "eth0"], status: 0, output: "no XDP program on lb\(i): \(json)")
        }
        return id
    }

    func send(_ i: Int, _ method: String, _ path: String) throws -> HTTPResponse {
        try admin(i).send(HTTPRequest(method: method, path: path))
    }

    private func get<T: Decodable>(_ type: T.Type, _ i: Int, _ path: String, query: [String: String] = [:]) throws -> T {
        let response = try admin(i).send(HTTPRequest(method: "GET", path: path, query: query))
        guard response.status == 200 else {
            throw Command.Failure(command: ["GET", path], status: Int32(response.status), output: String(decoding: response.body, as: UTF8.self))
        }
        return try AdminJSON.decode(type, from: response.body)
    }

    // MARK: The client

    func exchange(vip: IPAddress, port: UInt16, proto: L4Protocol, count: Int) throws -> ClientReport {
        let output = try Command.inNamespace(clientNamespace, client(vip, port, proto) + ["--count", "\(count)", "--detail"], timeout: 60)
        return try decode(ClientReport.self, output)
    }

    /// Hold mode in the background: `connections` TCP connections, each asked every
    /// `interval` s for `rounds` rounds; a reply may take up to 5 s (TCP retransmits across a failover).
    func startHolding(vip: IPAddress, connections: Int, rounds: Int, interval: Double) throws -> Command.Running {
        try Command.Running(["ip", "netns", "exec", clientNamespace] + client(vip, 80, .tcp) + [
            "--hold", "--count", "\(connections)", "--rounds", "\(rounds)", "--interval", "\(interval)",
            "--timeout", "5", "--max-failures", "\(connections)",
        ])
    }

    func finishHolding(_ running: Command.Running) throws -> HoldReport {
        let result = try running.wait(timeout: 120)
        // testhost.py exits 1 when a connection failed: the report still says which.
        guard result.status == 0 || result.status == 1 else {
            throw Command.Failure(command: running.arguments, status: result.status, output: result.error)
        }
        return try decode(HoldReport.self, result.output)
    }

    /// TCP segments the client retransmitted so far: each is a client packet lost on the way.
    func clientRetransmissions() throws -> UInt64 {
        let text = try Command.inNamespace(clientNamespace, ["cat", "/proc/net/snmp"])
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("Tcp:") }
        let names = lines[0].split(separator: " "), values = lines[1].split(separator: " ")
        guard let i = names.firstIndex(of: "RetransSegs") else { return 0 }
        return UInt64(values[i]) ?? 0
    }

    private func client(_ vip: IPAddress, _ port: UInt16, _ proto: L4Protocol) -> [String] {
        ["python3", Command.script("testhost.py"), "client", "--vip", "\(vip)", "--port", "\(port)", "--proto", proto.rawValue, "--compact"]
    }

    private func decode<T: Decodable>(_ type: T.Type, _ output: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(type, from: Data(output.utf8))
    }

    @discardableResult
    private func script(_ name: String, _ arguments: [String], timeout: TimeInterval) throws -> String {
        try Command.run(["env", "PETREL_BIN=\(EndToEnd.DaemonTrafficTests.Daemon.binaries)", Command.script("scale-out/\(name)")] + arguments,
                        timeout: timeout)
    }
}

/// Builds a scale-out network, runs `body`, and destroys the network even when `body` throws.
func withScaleOutNetwork<T>(balancers: Int = 3, _ body: (ScaleOutNetwork) throws -> T) throws -> T {
    let network = try ScaleOutNetwork(balancers: balancers)
    defer { network.destroy() }
    return try body(network)
}

/// @unchecked Sendable: `value` is read and written under `lock` only.
private final class ScaleOutCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int {
        lock.lock()
        defer { lock.unlock() }
        value += 1
        return value
    }
}
