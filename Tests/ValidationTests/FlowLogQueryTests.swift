import Foundation
import Petrel
import PetrelAdmin
import Testing

/// `GET /v1/flows` parameters: the one place their rules live (FlowLogQuery), the
/// errors naming the field, and the VIP text the CLI and the API share.
@Suite("Flow-log query parameters")
struct FlowLogQueryTests {
    @Test("No parameters: every VIP, the largest count, the longest request, every decision")
    func defaults() throws {
        let query = try FlowLogQuery(query: [:])
        #expect(query == FlowLogQuery.defaults)
        #expect(query.vip == nil && query.sample == 1)
        #expect(query.seconds == FlowLogQuery.secondsRule.range.upperBound)
        #expect(query.parameters.isEmpty)
    }

    @Test("Valid parameters are read, and written back the same")
    func roundTrip() throws {
        let query = try FlowLogQuery(query: ["vip": "udp/[fd50:0:100::1]:53", "count": "20", "seconds": "3", "sample": "100"])
        #expect(query.vip == VipKey(address: IPAddress("fd50:0:100::1")!, port: 53, proto: .udp))
        #expect(query.count == 20 && query.seconds == 3 && query.sample == 100)
        #expect(try FlowLogQuery(query: query.parameters) == query)
        #expect(try FlowLogQuery(query: ["vip": "tcp/198.18.100.2:*"]).vip?.port == 0)
    }

    @Test("Each bad parameter is refused, naming it", arguments: [
        (["count": "0"], "count"), (["count": "100001"], "count"), (["count": "many"], "count"),
        (["seconds": "0"], "seconds"), (["seconds": "6"], "seconds"),
        (["sample": "0"], "sample"), (["sample": "-3"], "sample"),
        (["vip": "tcp/198.18.100.2"], "vip"), (["vip": "sctp/198.18.100.2:80"], "vip"), (["vip": "tcp/1.2.3.4.5:80"], "vip"),
        (["follow": "true"], "follow"),
    ])
    func refused(query: [String: String], field: String) {
        #expect {
            _ = try FlowLogQuery(query: query)
        } throws: { error in
            guard case let .invalid(named, _, _) = error as? PetrelError else { return false }
            return named.hasPrefix(field)
        }
    }

    @Test("A line lists its fields in a fixed order, time first")
    func lineOrder() throws {
        let line = FlowLogLine(time: "2026-12-01T06:28:05.827346Z", protocol: "tcp", family: "ipv4", client: "198.18.1.2", clientPort: 35192,
                               vip: "tcp/198.18.100.1:80", destinationPort: 80, real: "198.18.3.12", reason: "ring", remembered: true,
                               tablesBypassed: false, cpu: 0)
        let text = String(decoding: line.encoded(), as: UTF8.self)
        #expect(text == #"{"time":"2026-12-01T06:28:05.827346Z","protocol":"tcp","family":"ipv4","client":"198.18.1.2","client_port":35192,"#
            + #""vip":"tcp/198.18.100.1:80","destination_port":80,"real":"198.18.3.12","reason":"ring","remembered":true,"#
            + #""tables_bypassed":false,"cpu":0}"# + "\n")
        #expect(try AdminJSON.decode(FlowLogLine.self, from: line.encoded()) == line)
        var odd = line
        odd.vip = "quote \" backslash \\ newline \n"
        #expect(try AdminJSON.decode(FlowLogLine.self, from: odd.encoded()) == odd, "strings are escaped")
    }
}
