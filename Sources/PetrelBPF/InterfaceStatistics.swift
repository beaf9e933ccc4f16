import Glibc

/// The counters an interface's driver exports through ethtool (`ethtool -S`),
/// and the kernel's standard ones in sysfs. Drivers name their counters as
/// they like; XDP drivers count what XDP_TX failed to send, which the data
/// plane cannot see (it counts a packet forwarded when it returns XDP_TX).
extension NetworkInterface {
    /// Every driver counter by name; empty when the driver exports none.
    public func driverStatistics() throws(BPFError) -> [(name: String, value: UInt64)] {
        let sock = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if sock < 0 { throw BPFError("read driver statistics of '\(name)': open socket", errno: Glibc.errno) }
        defer { close(sock) }

        // ETHTOOL_GSSET_INFO: how many counters (struct ethtool_sset_info with one data word).
        var info = [UInt32](repeating: 0, count: 6)
        info[0] = Ethtool.getStringSetInfo
        info[2] = UInt32(1 << Ethtool.statisticsSet)  // sset_mask, low word (little endian)
        try ethtool(sock, &info, "count driver statistics")
        let count = Int(info[4])
        guard count > 0, count < 100_000 else { return [] }

        // ETHTOOL_GSTRINGS: the names, 32 bytes each, after a 12-byte header.
        var names = [UInt8](repeating: 0, count: 12 + count * Ethtool.nameLength)
        names.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: Ethtool.getStrings, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: Ethtool.statisticsSet, toByteOffset: 4, as: UInt32.self)
            raw.storeBytes(of: UInt32(count), toByteOffset: 8, as: UInt32.self)
        }
        try ethtool(sock, &names, "read driver statistic names")

        // ETHTOOL_GSTATS: the values, 8 bytes each, after an 8-byte header.
        var values = [UInt64](repeating: 0, count: 1 + count)
        values.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: Ethtool.getStatistics, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: UInt32(count), toByteOffset: 4, as: UInt32.self)
        }
        try ethtool(sock, &values, "read driver statistics")

        return (0..<count).map { index in
            let start = 12 + index * Ethtool.nameLength
            let bytes = names[start..<(start + Ethtool.nameLength)].prefix { $0 != 0 }
            return (String(decoding: bytes, as: UTF8.self), values[1 + index])
        }
    }

    /// A standard counter from /sys/class/net/NAME/statistics (`tx_errors`, `tx_dropped`, ...).
    public func kernelStatistic(_ counter: String) -> UInt64? {
        guard let file = fopen("/sys/class/net/\(name)/statistics/\(counter)", "r") else { return nil }
        defer { fclose(file) }
        var value: UInt64 = 0
        return fscanf_u64(file, &value) ? value : nil
    }

    private func ethtool<T>(_ sock: Int32, _ buffer: inout [T], _ what: String) throws(BPFError) {
        var request = ifreq()
        withUnsafeMutableBytes(of: &request.ifr_ifrn.ifrn_name) { $0.copyBytes(from: Array(name.utf8.prefix(Int(IFNAMSIZ) - 1))) }
        let result = buffer.withUnsafeMutableBytes { raw -> Int32 in
            request.ifr_ifru.ifru_data = raw.baseAddress!.assumingMemoryBound(to: CChar.self)
            return ioctl(sock, UInt(Ethtool.ioctl), &request)
        }
        if result != 0 { throw BPFError("\(what) of '\(name)'", errno: Glibc.errno) }
    }
}

/// Reads one unsigned decimal number (a sysfs counter file).
private func fscanf_u64(_ file: UnsafeMutablePointer<FILE>, _ value: inout UInt64) -> Bool {
    var line = [CChar](repeating: 0, count: 32)
    guard fgets(&line, Int32(line.count), file) != nil else { return false }
    let digits = line.prefix { $0 >= 48 && $0 <= 57 }
    guard !digits.isEmpty, let number = UInt64(String(decoding: digits.map { UInt8($0) }, as: UTF8.self)) else { return false }
    value = number
    return true
}

/// The ethtool ioctl's commands (linux/ethtool.h).
private enum Ethtool {
    static let ioctl: Int32 = 0x8946            // SIOCETHTOOL
    static let getStrings: UInt32 = 0x1b        // ETHTOOL_GSTRINGS
    static let getStatistics: UInt32 = 0x1d     // ETHTOOL_GSTATS
    static let getStringSetInfo: UInt32 = 0x37  // ETHTOOL_GSSET_INFO
    static let statisticsSet: UInt32 = 1        // ETH_SS_STATS
    static let nameLength = 32                  // ETH_GSTRING_LEN
}
