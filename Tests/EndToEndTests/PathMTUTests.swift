import Foundation
import Petrel
import PetrelBPF
import Testing

extension EndToEnd {
    /// Path MTU discovery through the balancer (docs/icmp.md): the client's path to the VIP
    /// carries 1500 bytes and so does the balancer's link, so a full-size segment does not
    /// fit once encapsulated. Only Petrel's "too big" answer tells the client's kernel to
    /// send smaller ones: with it a 1 MB upload completes, without it the upload stalls.
    @Suite("End to end: path MTU discovery", .serialized)
    struct PathMTUTests {
        static let uploadBytes = 1 << 20
        static let port: UInt16 = 8080

        /// In a real: accepts connections on the VIP port, reads each to its end and answers
        /// "<bytes> <sha256>". Dual-stack, so one server takes IPv4 and IPv6.
        /// A thread per connection: a stalled upload must not hold up the next one.
        static let server = """
            import hashlib, socket, threading
            def serve(c):
                h, n = hashlib.sha256(), 0
                while True:
                    b = c.recv(65536)
                    if not b:
                        break
                    h.update(b)
                    n += len(b)
                c.sendall(f'{n} {h.hexdigest()}'.encode())
                c.close()
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(('::', \(port)))
            s.listen(8)
            while True:
                c, _ = s.accept()
                threading.Thread(target=serve, args=(c,), daemon=True).start()
            """

        /// In the client: uploads `size` seeded random bytes to the VIP within `limit` seconds
        /// and prints JSON: what was sent, what the server says it received, or the error.
        static func client(vip: IPAddress, size: Int, limit: Double) -> String {
            """
            import hashlib, json, random, socket, time
            data = random.Random(20261201).randbytes(\(size))
            start = time.monotonic()
            result = {'sent_sha256': hashlib.sha256(data).hexdigest()}
            try:
                while True:  # the server may still be starting
                    try:
                        c = socket.create_connection(('\(vip)', \(port)), timeout=\(limit))
                        break
                    except ConnectionRefusedError:
                        if time.monotonic() - start > 5:
                            raise
                        time.sleep(0.05)
                c.settimeout(max(0.1, \(limit) - (time.monotonic() - start)))
                c.sendall(data)
                c.shutdown(socket.SHUT_WR)
                reply = b''
                while True:
                    b = c.recv(4096)
                    if not b:
                        break
                    reply += b
                count, digest = reply.decode().split()
                result.update(received=int(count), received_sha256=digest)
            except Exception as e:
                result['error'] = f'{type(e).__name__}: {e}'
            result['seconds'] = time.monotonic() - start
            print(json.dumps(result))
            """
        }

        struct Upload: Decodable {
            let sentSha256: String
            let received: Int?
            let receivedSha256: String?
            let error: String?
            let seconds: Double
        }

        static func upload(_ network: TestNetwork, vip: IPAddress, limit: Double) throws -> Upload {
            let output = try Command.inNamespace(network.clientNamespace, ["python3", "-c", client(vip: vip, size: uploadBytes, limit: limit)],
                                                 timeout: limit + 15)
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode(Upload.self, from: Data(output.utf8))
        }

        @Test("A 1 MB TCP upload over a 1500-byte path completes only because the client learns the MTU from Petrel",
              arguments: [(Plan.vip4, Plan.reals4[0], 1480), (Plan.vip6, Plan.reals6[0], 1460)])
        func uploadThroughSmallerMTU(vip: IPAddress, real: IPAddress, expectedMTU: Int) throws {
            let key = VipKey(address: vip, port: Self.port, proto: .tcp)
            try withTestNetwork(vips: [Vip(key: key, reals: [Real(address: real)])]) { network in
                // The balancer's link carries what the client's does (scripts/topology.sh gives it
                // 1600 for the other tests); the reals' links keep 1600, so the encapsulated
                // packets fit there once the client sends smaller ones.
                try Command.run(["ip", "-n", network.lbNamespace, "link", "set", Plan.interface, "mtu", "1500"])
                try Command.run(["ip", "-n", "\(network.prefix)-router", "link", "set", "eth-lb", "mtu", "1500"])
                let lbMAC = try NetworkNamespace.run(network.lbNamespace) { try NetworkInterface(named: Plan.interface).mac() }
                var settings = ForwardingSettings(interfaceMAC: lbMAC, nextHopMAC: Plan.routerMAC, mtu: 1500, icmpTooBig: false)
                try network.balancer.configureForwarding(settings)

                let server = try Command.Running(["ip", "netns", "exec", "\(network.prefix)-real1", "python3", "-c", Self.server])
                defer { server.stop() }

                // Without the answers the client's full-size segments vanish: the upload stalls.
                let stalled = try Self.upload(network, vip: vip, limit: 3)
                #expect(stalled.error != nil && stalled.received == nil, "without too-big answers the upload must not complete: \(stalled)")
                #expect(try network.balancer.stats()[.dropTooBig] > 0)
                #expect(try network.balancer.stats()[.replyTooBig] == 0)

                settings.icmpTooBig = true
                try network.balancer.configureForwarding(settings)
                let upload = try Self.upload(network, vip: vip, limit: 20)
                #expect(upload.error == nil, "\(upload)")
                #expect(upload.received == Self.uploadBytes)
                #expect(upload.receivedSha256 == upload.sentSha256, "byte-exact")
                #expect(upload.seconds < 20)
                let stats = try network.balancer.stats()
                #expect(stats[.replyTooBig] > 0, "Petrel told the client")
                // The client's kernel now holds the smaller MTU for the VIP.
                let route = try Command.inNamespace(network.clientNamespace, ["ip", "route", "get", "\(vip)"])
                #expect(route.contains("mtu \(expectedMTU)"), "client route: \(route)")
                print("[e2e] path MTU \(vip): stalled without answers (\(stalled.error ?? "")); with them 1 MiB in "
                      + String(format: "%.2f s", upload.seconds) + ", \(stats[.replyTooBig]) too-big answers, client route: "
                      + route.trimmingCharacters(in: .whitespacesAndNewlines))
            }
        }
    }
}
