import CPetrelABI
import PetrelBPF

/// The shared connection tables (conn_shared_v4 / _v6, see petrel_abi.h), read as
/// the data plane reads them (bpf/lib/select.h, lookup_shared): the flow's set,
/// the first entry with the flow's key, used only if its check matches.
struct SharedConnectionTable {
    let maps: BalancerMaps
    let limits: DataPlaneLimits

    /// The connection the shared table holds for `flow`, if any.
    func lookup(_ flow: Flow) throws(BPFError) -> petrel_conn? {
        var a: UInt64 = 0, b: UInt64 = 0
        let sets = UInt32(limits.sharedTableSets)
        if flow.source.family == .ipv4 {
            var key = flow.abiV4
            petrel_fold_flow_v4(&key, &a, &b)
            let set = try maps.sharedConnectionsV4.lookup(petrel_shared_set(a, b, sets), elementsOf: petrel_shared_entry_v4.self)
            guard let entry = set?.first(where: { Self.words(of: $0.key) == Self.words(of: key) }) else { return nil }
            return Self.checked(key: key, tail: entry.tail, check: entry.check)
        }
        var key = flow.abi
        petrel_fold_flow_v6(&key, &a, &b)
        let set = try maps.sharedConnectionsV6.lookup(petrel_shared_set(a, b, sets), elementsOf: petrel_shared_entry_v6.self)
        guard let entry = set?.first(where: { Self.words(of: $0.key) == Self.words(of: key) }) else { return nil }
        return Self.checked(key: key, tail: entry.tail, check: entry.check)
    }

    /// The entry's connection if its check is the one its key and tail give
    /// (not torn between two writers, not empty).
    private static func checked<Key: BitwiseCopyable>(key: Key, tail: petrel_shared_tail, check: UInt64) -> petrel_conn? {
        let keyWords = words(of: key), tailWords = words(of: tail)
        let expected = keyWords.withUnsafeBufferPointer { keyBuffer in
            tailWords.withUnsafeBufferPointer { tailBuffer in
                petrel_shared_check(keyBuffer.baseAddress, Int32(keyBuffer.count), tailBuffer.baseAddress)
            }
        }
        return check == expected ? tail.conn : nil
    }

    /// A key or tail as the words the data plane compares and hashes (whole words, see petrel_abi.h).
    private static func words<Value: BitwiseCopyable>(of value: Value) -> [UInt64] {
        withUnsafeBytes(of: value) { bytes in
            (0..<bytes.count / 8).map { bytes.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self) }
        }
    }
}
