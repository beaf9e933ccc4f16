import Petrel

// Readers for the values that mean something to Petrel: interface names, MACs,
// prefixes, loopback endpoints, paths, prime ring sizes. Each reports what it
// found and what it expected, and returns nil when the value is unusable.

extension ConfigNode {
    /// A Linux interface name: 1 to 15 bytes, no `/`, `:` or white space.
    func interfaceName() -> String? {
        guard let name = string() else { return nil }
        let limit = PetrelConfiguration.Limits.interfaceNameLength
        guard !name.isEmpty, name.utf8.count <= limit, name != ".", name != "..",
              !name.contains(where: { $0 == "/" || $0 == ":" || $0.isWhitespace })
        else {
            report("must be an interface name of 1 to \(limit) characters without '/', ':' or spaces, got \(describe())")
            return nil
        }
        return name
    }

    /// A unicast Ethernet address such as `02:00:00:00:02:01`.
    func macAddress() -> MACAddress? {
        guard let text = string() else { return nil }
        guard text.allSatisfy({ $0.isHexDigit || $0 == ":" }), let mac = MACAddress(text) else {
            report("must be a MAC address: six two-digit hex bytes separated by colons, like \"02:00:00:00:02:01\"; got \(describe())")
            return nil
        }
        if mac.isZero {
            report("must be the router's MAC address, got the all-zero address \(text)")
            return nil
        }
        if mac.isMulticast {
            report("must be a unicast MAC address (the router's), got the multicast or broadcast address \(text)")
            return nil
        }
        return mac
    }

    /// An address that can be a VIP, a real or a gateway (`IPAddress.checkHost`:
    /// not unspecified, loopback, multicast, broadcast or reserved).
    func hostAddress() -> IPAddress? {
        guard let address = ipAddress() else { return nil }
        if let issue = address.checkHost(at: .root) {
            report(issue.message)
            return nil
        }
        return address
    }

    /// An outer source prefix of `family` (`ForwardingSettings.checkEncapSource`).
    func encapSource(of family: AddressFamily) -> IPAddress? {
        guard let address = ipAddress() else { return nil }
        if let issue = ForwardingSettings.checkEncapSource(address, family: family, at: .root) {
            report(issue.message)
            return nil
        }
        return address
    }

    /// `127.0.0.1:9180` or `[::1]:9180`: a loopback address and a port.
    func loopbackEndpoint() -> PetrelConfiguration.ListenAddress? {
        guard let text = string() else { return nil }
        let host: Substring, portText: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]"),
           text[text.index(after: close)...].hasPrefix(":") {
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else if let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") {
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        } else {
            report("must be host:port, like 127.0.0.1:9180 or [::1]:9180 (IPv6 in brackets), got \(describe())")
            return nil
        }
        guard let address = IPAddress(String(host)) else {
            report("must be a loopback IP address and a port, like 127.0.0.1:9180; \"\(host)\" is not an IP address")
            return nil
        }
        let loopback = address.hostAddressProblem == "loopback"
        guard loopback else {
            report("must be on a loopback address (127.0.0.0/8 or ::1), got \(address); the endpoint has no authentication")
            return nil
        }
        let ports = PetrelConfiguration.Limits.listenPort
        guard let port = Int(portText), ports.contains(port) else {
            report("port must be between \(ports.lowerBound) and \(ports.upperBound), got \"\(portText)\"")
            return nil
        }
        return PetrelConfiguration.ListenAddress(host: address.description, port: port)
    }

    /// An absolute path, at most `limit` bytes when one is given.
    func absolutePath(limit: Int? = nil, purpose: String = "") -> String? {
        guard let path = string() else { return nil }
        guard path.hasPrefix("/") else {
            report("must be an absolute path, got \(describe())")
            return nil
        }
        if let limit, path.utf8.count > limit {
            report("must be at most \(limit) bytes\(purpose), got \(path.utf8.count) bytes")
            return nil
        }
        return path
    }

    /// A prime number of ring slots within `Limits.ringSize`.
    func ringSize() -> Int? {
        guard let size = integer(in: PetrelConfiguration.Limits.ringSize) else { return nil }
        guard Primes.isPrime(size) else {
            let nearest = [Self.prime(below: size), Self.prime(above: size)]
                .compactMap { $0 }.filter { PetrelConfiguration.Limits.ringSize.contains($0) }
            report("must be a prime number (Maglev needs it), got \(size); the nearest primes are "
                + nearest.map(String.init).joined(separator: " and "))
            return nil
        }
        return size
    }

    /// The primes next to a rejected ring size, to suggest in its message.
    private static func prime(below n: Int) -> Int? {
        stride(from: n - 1, through: 2, by: -1).first(where: Primes.isPrime)
    }

    private static func prime(above n: Int) -> Int? {
        (n + 1...n + 1_000).first(where: Primes.isPrime)
    }
}
