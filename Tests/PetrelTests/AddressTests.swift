@testable import Petrel
import Testing

@Suite("Addresses and MACs as fixed-size values")
struct AddressTests {
    @Test("Text, numbers, wire bytes and ABI words describe the same address")
    func forms() {
        let v4 = IPAddress("198.18.3.11")!
        #expect(v4 == .v4(198, 18, 3, 11))
        #expect(v4 == .v4(0xc612_030b))
        #expect(v4.bytes == [198, 18, 3, 11])
        #expect(IPAddress(wireBytes: [198, 18, 3, 11]) == v4)
        #expect("\(v4)" == "198.18.3.11")
        #expect(v4.abiWords.0 == UInt32(0xc612_030b).bigEndian && v4.abiWords.1 == 0)
        #expect(IPAddress(abiWords: v4.abiWords, family: v4.abiFamily) == v4)

        let v6 = IPAddress("fd50:0:3::11")!
        #expect(v6 == .v6(high: 0xfd50_0000_0003_0000, low: 0x11))
        #expect(v6.bytes.count == 16 && v6.bytes.first == 0xfd && v6.bytes.last == 0x11)
        #expect(IPAddress(wireBytes: v6.bytes) == v6)
        #expect("\(v6)" == "fd50:0:3::11")
        #expect(IPAddress(abiWords: v6.abiWords, family: v6.abiFamily) == v6)

        #expect(IPAddress(wireBytes: [1, 2, 3]) == nil)
        #expect(IPAddress("198.18.3.256") == nil)
    }

    @Test("Order is IPv4 first, then by bytes (Maglev's canonical order)")
    func order() {
        let sorted = ["fd50::1", "198.18.3.12", "::ffff:1.2.3.4", "10.0.0.1", "198.18.3.2", "fd50::0:1:0"].map { IPAddress($0)! }.sorted()
        #expect(sorted.map(\.description) == ["10.0.0.1", "198.18.3.2", "198.18.3.12", "::ffff:1.2.3.4", "fd50::1", "fd50::1:0"])
        // The same order as comparing the wire bytes.
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.family == b.family {
            #expect(a.bytes.lexicographicallyPrecedes(b.bytes))
        }
    }

    @Test("What cannot be a VIP, a real or a gateway")
    func hostAddresses() {
        let kinds = ["0.0.0.0": "unspecified", "::": "unspecified", "127.0.0.1": "loopback", "127.255.0.3": "loopback",
                     "::1": "loopback", "224.0.0.1": "multicast", "239.255.255.255": "multicast", "ff02::1": "multicast",
                     "255.255.255.255": "broadcast", "240.0.0.1": "reserved"]
        for (text, kind) in kinds { #expect(IPAddress(text)!.hostAddressProblem == kind, "\(text)") }
        for text in ["198.18.3.11", "10.0.0.1", "223.255.255.254", "fd50::1", "::2", "fe80::1", "2001:db8::1"] {
            #expect(IPAddress(text)!.hostAddressProblem == nil, "\(text)")
        }
    }

    @Test("MACs: parsing, formatting, bytes and the group bit")
    func macs() {
        let mac = MACAddress("02:00:00:00:02:01")!
        #expect(mac == MACAddress(2, 0, 0, 0, 2, 1))
        #expect(mac.bytes == [2, 0, 0, 0, 2, 1])
        #expect("\(mac)" == "02:00:00:00:02:01")
        #expect(MACAddress(abiBytes: mac.abiBytes) == mac)
        #expect(!mac.isMulticast && !mac.isZero)
        #expect(MACAddress("ff:ff:ff:ff:ff:ff")!.isMulticast)
        #expect(MACAddress("01:00:5e:00:00:01")!.isMulticast)
        #expect(MACAddress("00:00:00:00:00:00")!.isZero)
        for bad in ["02:00:00:00:02", "02:00:00:00:02:01:03", "2:00:00:00:02:01", "zz:00:00:00:02:01", ""] {
            #expect(MACAddress(bad) == nil, "\(bad)")
        }
        #expect(MACAddress(bytes: [1, 2, 3]) == nil)
    }
}

@Suite("Client prefixes (IPPrefix)")
struct IPPrefixTests {
    @Test("CIDR text: the address and a decimal length; anything else is not a prefix")
    func parsing() {
        #expect(IPPrefix("10.0.0.0/8") == IPPrefix(address: IPAddress("10.0.0.0")!, length: 8))
        #expect(IPPrefix("fd00:1::/32")?.length == 32)
        #expect(IPPrefix("10.0.0.0/33")?.length == 33, "the range is Vip.validate's rule, with its own message")
        for bad in ["10.0.0.0", "10.0.0.0/", "/8", "10.0.0.0/+8", "10.0.0.0/-1", "10.0.0.0/8/8", "10.0.0.0/ 8", "ten/8", "10.0.0.0/1234"] {
            #expect(IPPrefix(bad) == nil, "\(bad)")
        }
    }

    @Test("Containment and the network of a prefix with host bits, both families")
    func containment() {
        let v4 = IPPrefix("10.1.0.0/16")!
        #expect(v4.contains(IPAddress("10.1.255.7")!) && !v4.contains(IPAddress("10.2.0.1")!))
        #expect(!v4.contains(IPAddress("a01::1")!), "another family never matches")
        #expect(IPPrefix("10.1.2.3/8")!.network == IPPrefix("10.0.0.0/8")!)
        #expect(IPPrefix("0.0.0.0/0")!.contains(IPAddress("203.0.113.9")!))
        let v6 = IPPrefix("fd50:0:1:0:8000::/65")!
        #expect(v6.contains(IPAddress("fd50:0:1:0:8000::5")!) && !v6.contains(IPAddress("fd50:0:1:0:7fff::5")!))
        #expect(IPPrefix("fd50::1/64")!.network == IPPrefix("fd50::/64")!)
        #expect(IPPrefix("fd50::1/128")!.network == IPPrefix("fd50::1/128")!)
    }
}
