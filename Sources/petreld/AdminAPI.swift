import Foundation
import Logging
import NIOCore
import Petrel
import PetrelAdmin
import PetrelConfig

/// The admin API: HTTP/1.1 + JSON. Changes apply to the running state only; the
/// config file stays the source of truth and the next reload brings it back.
struct AdminAPI: Sendable {
    let daemon: Daemon

    /// Opens the admin socket, the optional admin TCP endpoint and the optional metrics endpoint,
    /// all served by one event loop.
    static func startListeners(for daemon: Daemon, config: PetrelConfiguration, group: EventLoopGroup,
                               limits: ServerLimits, logger: Logger) throws -> [HTTPServer] {
        let api = AdminAPI(daemon: daemon)
        var servers: [HTTPServer] = []
        do {
            servers.append(try HTTPServer(.unix(path: config.adminSocket), field: "admin.socket", group: group, limits: limits,
                                          responder: api.respond))
            if let tcp = config.adminTCP {
                servers.append(try HTTPServer(.tcp(host: tcp.host, port: tcp.port), field: "admin.tcp", group: group, limits: limits,
                                              responder: api.respond))
            }
            if let metrics = config.metricsListen {
                servers.append(try HTTPServer(.tcp(host: metrics.host, port: metrics.port), field: "metrics.listen", group: group,
                                              limits: limits, responder: api.respondOnMetricsPort))
            }
        } catch {
            for server in servers { server.stop() }
            throw error
        }
        logger.notice("admin API listening", metadata: [
            "endpoints": "\(servers.map(\.name).joined(separator: " "))", "max_connections": "\(limits.maxConnections)",
        ])
        return servers
    }

    /// The transport's seam: reads run on the daemon's read queue, changes and reloads
    /// on its control queue, so a long reload never holds up a status call or a scrape.
    @Sendable func respond(to request: HTTPRequest, reply: HTTPReply) {
        if request.method == "GET" && request.pathComponents == ["v1", "flows"] {
            return daemon.readQueue.async { followFlowLog(request, reply: reply) }
        }
        // A capture streams for as long as it runs: it gets its answer from the capture service, not `handle`.
        if request.method == "GET", request.pathComponents == ["v1", "capture"] {
            let captures = daemon.captures!
            return daemon.readQueue.async { captures.start(request, reply: reply) }
        }
        let queue = request.method == "GET" ? daemon.readQueue : daemon.queue
        queue.async { reply(handle(request)) }
    }

    /// The metrics listener serves `GET /metrics` only.
    @Sendable func respondOnMetricsPort(to request: HTTPRequest, reply: HTTPReply) {
        if let refusal = AdminAPI.refusal(request, methods: AdminRoutes.metricsMethods(for: request.pathComponents), served: "only GET /metrics is served here") {
            return reply(refusal)
        }
        daemon.readQueue.async { reply(metrics()) }
    }

    /// Answers one request, in the calling thread.
    func handle(_ request: HTTPRequest) -> HTTPResponse {
        let response = route(request)
        // A change to the VIPs may announce or withdraw an address (changes run on the daemon's queue).
        if request.method != "GET" { daemon.reconcileAnnouncements() }
        if request.method != "GET" {
            daemon.logger.info("admin request", metadata: ["method": "\(request.method)", "path": "\(request.path)", "status": "\(response.status)"])
        }
        return response
    }

    /// 404 for an unknown path, 405 with `Allow` for a known path and another method; nil when the route exists.
    private static func refusal(_ request: HTTPRequest, methods: [String], served: String) -> HTTPResponse? {
        if methods.isEmpty { return error(404, "no endpoint \(request.method) \(request.path) (\(served))") }
        guard !methods.contains(request.method) else { return nil }
        var response = error(405, "\(request.path) takes \(methods.joined(separator: ", ")), not \(request.method)")
        response.headers["Allow"] = methods.joined(separator: ", ")
        return response
    }

    private func route(_ request: HTTPRequest) -> HTTPResponse {
        let parts = request.pathComponents
        if let refusal = AdminAPI.refusal(request, methods: AdminRoutes.methods(for: parts), served: "see docs/admin-api.yaml") {
            return refusal
        }
        do {
            switch (request.method, parts) {
            case ("GET", ["metrics"]):
                return metrics()
            case ("GET", ["v1", "status"]):
                return json(daemon.status())
            case ("GET", ["v1", "vips"]):
                return json(daemon.balancer.vips.map(VipDocument.init))
            case ("POST", ["v1", "vips"]):
                if let replace = request.query["replace"], replace != "true", replace != "false" {
                    throw PetrelError.invalid(field: "replace", value: "\"\(replace)\"", expected: "must be true or false")
                }
                let vip = try RequestBody.vip(request.body, ringSize: daemon.balancer.limits.ringSize)
                let before = daemon.balancer.vips.first { $0.key == vip.key }
                // ?replace=false: create only (what `petrel vip add` sends), so a typo'd add
                // never silently replaces a live VIP's reals.
                if let before, request.query["replace"] == "false" {
                    return AdminAPI.error(409, "VIP \(vip.key) already exists (with \(before.reals.count) real(s)); replace=false refuses to replace it")
                }
                var change = ChangeDocument(try daemon.balancer.upsert(vip))
                change.created = before == nil
                change.changes = VipChanges.describe(from: before, to: vip)
                return json(change, status: before == nil ? 201 : 200)
            case ("GET", ["v1", "health"]):
                return json(daemon.health.document())
            case ("GET", ["v1", "stats"]):
                return json(StatsDocument(try daemon.balancer.stats()))
            case ("GET", ["v1", "explain"]):
                return json(ExplainDocument(try daemon.balancer.explain(try flow(request.query), packetLength: try packetLength(request.query))))
            case ("POST", ["v1", "reload"]):
                switch daemon.reload(trigger: "admin API") {
                case let .applied(report, generation, restartNeeded):
                    return json(ChangeDocument(report, generation: generation, restartNeeded: restartNeeded.isEmpty ? nil : restartNeeded))
                case let .refused(message, issues):
                    return HTTPResponse(status: 400, body: AdminJSON.encode(ErrorDocument(error: message, issues: issues)))
                }
            case let ("GET", parts) where parts.count == 5 && parts[0] == "v1" && parts[1] == "ring":
                return json(try ring(try existingVip(parts[2], parts[3], parts[4])))
            case let (method, parts) where parts.count >= 5 && parts[0] == "v1" && parts[1] == "vips":
                return try vipRoute(method, parts, request.body)
            default:
                return AdminAPI.error(404, "no endpoint \(request.method) \(request.path) (see docs/operating.md)")
            }
        } catch let failure as PetrelError {
            if case .notFound = failure { return AdminAPI.error(404, "\(failure)") }
            if case .kernel = failure { return AdminAPI.error(500, "\(failure)") }
            return AdminAPI.error(400, "\(failure)")
        } catch {
            return AdminAPI.error(400, "\(error)")
        }
    }

    /// `/v1/vips/{proto}/{address}/{port}[/reals[/{address}[/weight]]]`.
    private func vipRoute(_ method: String, _ parts: [String], _ body: Data) throws -> HTTPResponse {
        let vip = try existingVip(parts[2], parts[3], parts[4])
        let rest = Array(parts.dropFirst(5))
        switch (method, rest) {
        case ("GET", []):
            return json(VipDocument(vip))
        case ("DELETE", []):
            return json(ChangeDocument(try daemon.balancer.remove(vip: vip.key)))
        case ("POST", ["reals"]):
            let real = try RequestBody.real(body, vipAddress: vip.key.address)
            guard !vip.reals.contains(where: { $0.address == real.address }) else {
                throw PetrelError.invalid(field: "address", value: "\(real.address)",
                                          expected: "must not already be a real of \(vip.key) (use PUT .../weight to change its weight)")
            }
            var changed = vip
            changed.reals.append(real)
            return json(ChangeDocument(try daemon.balancer.upsert(changed)), status: 201)
        case ("DELETE", _) where rest.count == 2 && rest[0] == "reals":
            let ip = try realAddress(rest[1])
            guard vip.reals.contains(where: { $0.address == ip }) else { throw PetrelError.notFound("real \(ip) of VIP \(vip.key)") }
            // A route would be left pointing nowhere: the operator decides where its clients go.
            if let index = vip.sourceRoutes.firstIndex(where: { $0.real == ip }) {
                throw PetrelError.invalid(field: "source_routes[\(index)].real", value: "\(ip)",
                                          expected: "names this real (prefix \(vip.sourceRoutes[index].prefix)): remove or repoint the route first (petrel vip set ... --source-route)")
            }
            var changed = vip
            changed.reals.removeAll { $0.address == ip }
            return json(ChangeDocument(try daemon.balancer.upsert(changed)))
        case ("PUT", _) where rest.count == 3 && rest[0] == "reals" && rest[2] == "weight":
            let address = rest[1]
            let weight = try RequestBody.weight(body)
            return json(ChangeDocument(try daemon.balancer.setWeight(weight, real: try realAddress(address), vip: vip.key)))
        default:
            return AdminAPI.error(404, "no endpoint \(method) /\(parts.joined(separator: "/")) (see docs/operating.md)")
        }
    }

    // MARK: The flow log

    /// `GET /v1/flows`: JSON lines as decisions come, until the request's count or
    /// seconds (FlowLogQuery); a summary trailer ends it.
    private func followFlowLog(_ request: HTTPRequest, reply: HTTPReply) {
        do {
            let query = try FlowLogQuery(query: request.query)
            try daemon.flowLog.follow(query) {
                reply.stream(status: 200, contentType: "application/x-ndjson", headers: ["Trailer": FlowLogSummary.trailer])
            }
        } catch let failure as PetrelError {
            reply(AdminAPI.error(400, "\(failure)"))
        } catch FlowLogService.Refusal.tooManyFollowers {
            reply(AdminAPI.error(429, "the flow log has \(FlowLogService.maxFollowers) followers already; try again when one ends"))
        } catch {
            reply(AdminAPI.error(500, "\(error)"))
        }
    }

    // MARK: Pieces

    private func existingVip(_ proto: String, _ address: String, _ port: String) throws -> Vip {
        let key = try VipKey.parse(protocol: proto, address: address, port: port)
        guard let vip = daemon.balancer.vips.first(where: { $0.key == key }) else { throw PetrelError.notFound("VIP \(key)") }
        return vip
    }

    private func realAddress(_ text: String) throws -> IPAddress {
        guard let ip = IPAddress(text) else {
            throw PetrelError.invalid(field: "real", value: "\"\(text)\"", expected: "must be an IPv4 or IPv6 address")
        }
        return ip
    }

    /// The optional `length` of an explain query: an IP packet's size, to ask whether it fits.
    private func packetLength(_ query: [String: String]) throws -> Int? {
        guard let text = query["length"], !text.isEmpty else { return nil }
        guard let length = Int(text), (20...65_535).contains(length) else {
            throw PetrelError.invalid(field: "length", value: text, expected: "must be an IP packet size, 20...65535 bytes")
        }
        return length
    }

    private func flow(_ query: [String: String]) throws -> Flow {
        func value(_ name: String) throws -> String {
            guard let text = query[name], !text.isEmpty else {
                throw PetrelError.invalid(field: name, value: "nothing", expected: "is required (proto, src, sport, dst, dport)")
            }
            return text
        }
        func address(_ name: String) throws -> IPAddress {
            let text = try value(name)
            guard let ip = IPAddress(text) else { throw PetrelError.invalid(field: name, value: "\"\(text)\"", expected: "must be an IP address") }
            return ip
        }
        func port(_ name: String) throws -> UInt16 {
            let text = try value(name)
            guard let number = UInt16(text) else { throw PetrelError.invalid(field: name, value: text, expected: "must be a port 0...65535") }
            return number
        }
        let protoText = try value("proto")
        guard let proto = L4Protocol(rawValue: protoText.lowercased()) else {
            throw PetrelError.invalid(field: "proto", value: "\"\(protoText)\"", expected: "must be tcp or udp")
        }
        let flow = Flow(proto: proto, source: try address("src"), sourcePort: try port("sport"),
                        destination: try address("dst"), destinationPort: try port("dport"))
        guard flow.source.family == flow.destination.family else {
            throw PetrelError.invalid(field: "src", value: "\(flow.source)", expected: "must be of the same family as dst \(flow.destination)")
        }
        return flow
    }

    /// The ring as written to the kernel (after adopting pinned maps, as found there).
    private func ring(_ vip: Vip) throws -> RingDocument {
        let size = daemon.balancer.limits.ringSize
        let slots = daemon.balancer.ringSlots(of: vip.key) ?? [:]
        let shares = vip.reals.sorted { $0.address < $1.address }.map { real in
            RingDocument.Share(address: "\(real.address)", weight: real.weight, slots: slots[real.address] ?? 0,
                               share: Double(slots[real.address] ?? 0) / Double(size))
        }
        return RingDocument(vip: "\(vip.key)", ringSize: size, reals: shares)
    }

    private func json<T: Encodable>(_ value: T, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, body: AdminJSON.encode(value))
    }

    static func error(_ status: Int, _ message: String) -> HTTPResponse {
        HTTPResponse(status: status, body: AdminJSON.encode(ErrorDocument(error: message)))
    }

    // MARK: Metrics

    /// The Prometheus page (see DaemonMetrics); runs on the daemon's queue.
    func metrics() -> HTTPResponse {
        HTTPResponse(status: 200, contentType: MetricsPage.contentType, body: Data(DaemonMetrics(daemon: daemon).render().utf8))
    }
}
