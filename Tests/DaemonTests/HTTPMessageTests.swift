import Foundation
import PetrelAdmin
import Testing

/// The admin server's HTTP parsing: well-formed requests come through whole,
/// anything else is refused, nothing grows without bound.
@Suite struct HTTPMessageTests {
    func parse(_ text: String) -> HTTPRequest.ParseResult { HTTPRequest.parse(Data(text.utf8)) }

    @Test func completeRequestWithQueryAndBody() throws {
        let result = parse("PUT /v1/vips/tcp/198.18.100.1/80/reals/198.18.3.11/weight?x=a%20b&y HTTP/1.1\r\nContent-Length: 13\r\n\r\n{\"weight\": 2}")
        guard case .complete(let request) = result else { Issue.record("not complete: \(result)"); return }
        #expect(request.method == "PUT")
        #expect(request.pathComponents == ["v1", "vips", "tcp", "198.18.100.1", "80", "reals", "198.18.3.11", "weight"])
        #expect(request.query == ["x": "a b", "y": ""])
        #expect(String(decoding: request.body, as: UTF8.self) == "{\"weight\": 2}")
    }

    @Test func waitsForTheRestOfHeadersAndBody() {
        guard case .incomplete = parse("GET /v1/status HTTP/1.1\r\nHost: x") else { Issue.record("headers"); return }
        guard case .incomplete = parse("POST /v1/vips HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"a\"") else { Issue.record("body"); return }
    }

    @Test("Malformed requests are refused", arguments: [
        "GET\r\n\r\n",
        "GET /v1/status\r\n\r\n",
        "GET /v1/status SPDY/3\r\n\r\n",
        "GET /v1/status HTTP/1.1\r\nno colon here\r\n\r\n",
        "POST /v1/vips HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        "POST /v1/vips HTTP/1.1\r\nContent-Length: lots\r\n\r\n",
        "POST /v1/vips HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
        "POST /v1/vips HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ])
    func malformed(_ text: String) {
        guard case .malformed = parse(text) else { Issue.record("accepted: \(text.debugDescription)"); return }
    }

    @Test func endlessHeadersAreCutOff() {
        let flood = "GET / HTTP/1.1\r\n" + String(repeating: "X-Filler: yes\r\n", count: 80_000)
        guard case .malformed = parse(flood) else { Issue.record("a request head over 1 MiB was not refused"); return }
    }

    @Test func nonUTF8HeadIsRefused() {
        var bytes = Data("GET /".utf8)
        bytes.append(contentsOf: [0xff, 0xfe])
        bytes.append(Data(" HTTP/1.1\r\n\r\n".utf8))
        guard case .malformed = HTTPRequest.parse(bytes) else { Issue.record("accepted"); return }
    }
}
