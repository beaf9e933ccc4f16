import Foundation
import Glibc
import NIOCore
import NIOPosix
import PetrelAdmin
import Synchronization
import Testing
@testable import petreld

/// petreld's streamed answers on a real listener (SwiftNIO, a unix socket) read by
/// the real AdminClient: chunks arrive as written, a slow client costs bounded
/// memory (chunks dropped and counted), a client that goes stops the producer,
/// stopping the listener ends every stream, and nothing is left open.
@Suite(.serialized)
struct StreamedAnswerTests {
    /// A listener whose one route streams with `produce`, on a socket of its own.
    final class Listener: Sendable {
        let path: String
        let server: HTTPServer
        let group: MultiThreadedEventLoopGroup
        let streams = Locked<[HTTPBodyStream]>([])
        let ends = Locked<[HTTPBodyStream.End]>([])

        init(limits: ServerLimits = .standard, produce: @escaping @Sendable (HTTPBodyStream) -> Void) throws {
            path = "/tmp/petrel-stream-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
            group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let streams = self.streams
            let ends = self.ends
            server = try HTTPServer(.unix(path: path), field: "test", group: group, limits: limits) { request, reply in
                guard request.path == "/stream" else { return reply(HTTPResponse(status: 404, body: Data("{}".utf8))) }
                guard let stream = reply.stream(contentType: "application/octet-stream") else { return }
                streams.withLock { $0.append(stream) }
                stream.onEnd { end in ends.withLock { $0.append(end) } }
                DispatchQueue.global().async { produce(stream) }
            }
        }

        var client: AdminClient { AdminClient(socketPath: path, timeoutSeconds: 10) }

        func stop() {
            server.stop()
            try? group.syncShutdownGracefully()
        }

        /// Waits up to 10 s for `condition`.
        func eventually(_ condition: () -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                if condition() { return true }
                usleep(20_000)
            }
            return condition()
        }
    }

    @Test func chunksArriveAsWrittenAndTrailersCarryTheSummary() throws {
        let listener = try Listener { stream in
            for i in 0..<5 {
                stream.write(Data("chunk \(i)\n".utf8))
                usleep(50_000)
            }
            stream.finish(trailers: ["Petrel-Summary": "5 chunks"])
        }
        defer { listener.stop() }
        var pieces: [Data] = []
        let answer = try listener.client.stream(HTTPRequest(method: "GET", path: "/stream")) { bytes in
            pieces.append(bytes)
            return true
        }
        #expect(answer.response.status == 200)
        #expect(answer.response.headers["transfer-encoding"] == "chunked")
        #expect(answer.complete)
        #expect(answer.trailers["petrel-summary"] == "5 chunks")
        #expect(String(decoding: pieces.reduce(Data(), +), as: UTF8.self) == (0..<5).map { "chunk \($0)\n" }.joined())
        // 50 ms apart: the client read them one by one, not all at the end.
        #expect(pieces.count >= 3, "\(pieces.count) reads")
        #expect(listener.eventually { listener.server.openConnections == 0 && listener.server.openStreams == 0 })
        #expect(listener.ends.withLock { $0 } == [.finished])
    }

    @Test func aClientThatGoesStopsTheProducer() throws {
        let written = Locked(0)
        let listener = try Listener { stream in
            // Writes until the stream ends, as a capture does.
            while stream.end == nil {
                stream.write(Data(repeating: 0x61, count: 100))
                written.withLock { $0 += 1 }
                usleep(5_000)
            }
        }
        defer { listener.stop() }
        var received = 0
        let answer = try listener.client.stream(HTTPRequest(method: "GET", path: "/stream")) { bytes in
            received += bytes.count
            return received < 1_000
        }
        #expect(!answer.complete)
        #expect(listener.eventually { listener.ends.withLock { $0 } == [.clientGone] }, "the producer learns the client went")
        #expect(listener.eventually { listener.server.openConnections == 0 && listener.server.openStreams == 0 })
        let after = written.withLock { $0 }
        usleep(100_000)
        #expect(written.withLock { $0 } <= after + 1, "the producer stopped")
    }

    @Test func aSlowClientCostsBoundedMemoryAndDropsAreCounted() throws {
        var limits = ServerLimits.standard
        limits.maxStreamBufferBytes = 64 * 1024
        let listener = try Listener(limits: limits) { stream in
            // 16 MiB offered to a client that reads nothing: far beyond the socket buffers and the limit.
            for _ in 0..<16_384 where stream.end == nil { stream.write(Data(repeating: 0x62, count: 1_024)) }
            stream.finish()
        }
        defer { listener.stop() }
        let connection = try RawConnection(unixPath: listener.path)
        connection.send("GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(listener.eventually { listener.ends.withLock { $0 } == [.finished] })
        let stream = try #require(listener.streams.withLock { $0.first })
        let dropped = stream.dropped
        #expect(dropped.chunks > 10_000, "most of 16,384 chunks dropped, not queued: \(dropped)")
        #expect(dropped.bytes == dropped.chunks * 1_024)
        // What was not dropped fits in the socket buffers plus the limit: read it all now.
        let answer = connection.readUntilClosed(timeout: 10) ?? ""
        #expect(answer.hasPrefix("HTTP/1.1 200 OK"))
        let delivered = (16_384 - dropped.chunks) * 1_024
        #expect(answer.utf8.count > delivered, "every chunk not dropped arrived (\(answer.utf8.count) bytes with framing)")
        #expect(listener.eventually { listener.server.openConnections == 0 && listener.server.openStreams == 0 })
    }

    @Test func stoppingTheListenerEndsOpenStreams() throws {
        let listener = try Listener { stream in
            while stream.end == nil {
                stream.write(Data("tick\n".utf8))
                usleep(20_000)
            }
        }
        let result = Locked<AdminClient.StreamedResponse?>(nil)
        let client = listener.client
        let reader = Thread {
            let answer = try? client.stream(HTTPRequest(method: "GET", path: "/stream")) { _ in true }
            result.withLock { $0 = answer }
        }
        reader.start()
        #expect(listener.eventually { listener.server.openStreams == 1 })
        listener.stop()
        #expect(listener.eventually { result.withLock { $0 != nil } }, "the client's read ended")
        let answer = try #require(result.withLock { $0 })
        #expect(answer.complete)
        #expect(answer.trailers["petrel-stream-end"] == "petreld is stopping")
        #expect(listener.ends.withLock { $0 } == [.serverStopping])
        #expect(!FileManager.default.fileExists(atPath: listener.path))
    }

    @Test func chunkedBodyDecodesAcrossAnySplit() throws {
        let wire = Data("5\r\nhello\r\n1;ext=1\r\n \r\n0\r\nPetrel-Summary: ok\r\n\r\n".utf8)
        for split in 0...wire.count {
            var decoder = ChunkedBody()
            var body = try decoder.feed(wire.prefix(split))
            body += try decoder.feed(wire.dropFirst(split))
            #expect(String(decoding: body, as: UTF8.self) == "hello ")
            #expect(decoder.isComplete)
            #expect(decoder.trailers["petrel-summary"] == "ok")
        }
        var bad = ChunkedBody()
        #expect(throws: ChunkedBody.Malformed.self) { try bad.feed(Data("zz\r\n".utf8)) }
    }
}

/// A value shared between a test and the threads it starts.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<R>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}
