import CLibBPF
import Glibc

/// A loaded BPF map. Keys and values are plain C structs (from the shared ABI
/// header) or integers; their sizes are checked against the map's.
/// `@unchecked Sendable`: immutable after init; the kernel makes each map operation atomic.
public final class BPFMap: @unchecked Sendable {
    public let name: String
    public let keySize: Int
    public let valueSize: Int
    public let maxEntries: Int
    public let isPerCPU: Bool
    /// The kernel's id for the map (the same in every process that opens it).
    public let id: UInt32
    let fd: Int32
    private let ownsFD: Bool

    init(name: String, fd: Int32, ownsFD: Bool) throws(BPFError) {
        var info = bpf_map_info()
        var length = UInt32(MemoryLayout<bpf_map_info>.size)
        if bpf_obj_get_info_by_fd(fd, &info, &length) != 0 {
            let error = BPFError("read info of map '\(name)'", errno: Glibc.errno)
            if ownsFD { close(fd) }  // deinit does not run for a failed init
            throw error
        }
        self.name = name
        self.fd = fd
        self.ownsFD = ownsFD
        self.keySize = Int(info.key_size)
        self.valueSize = Int(info.value_size)
        self.maxEntries = Int(info.max_entries)
        self.id = info.id
        let type = bpf_map_type(rawValue: info.type)
        self.isPerCPU = [BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH].contains(type)
    }

    deinit {
        if ownsFD { close(fd) }
    }

    /// Opens a map pinned on bpffs.
    public static func openPinned(path: String, name: String) throws(BPFError) -> BPFMap {
        let fd = bpf_obj_get(path)
        if fd < 0 { throw BPFError("open pinned map \(path)", errno: Glibc.errno) }
        return try BPFMap(name: name, fd: fd, ownsFD: true)
    }

    /// Creates a map outside any object (used for the per-CPU connection tables).
    public static func create(type: bpf_map_type, name: String, keySize: Int, valueSize: Int, maxEntries: Int, flags: UInt32 = 0) throws(BPFError) -> BPFMap {
        let fd = withLibbpfOptions(bpf_map_create_opts.self) { options in
            options.pointee.map_flags = flags
            return bpf_map_create(type, name, UInt32(keySize), UInt32(valueSize), UInt32(maxEntries), options)
        }
        if fd < 0 { throw BPFError("create map '\(name)' (\(maxEntries) entries)", errno: Glibc.errno) }
        return try BPFMap(name: name, fd: fd, ownsFD: true)
    }

    /// Creates an LRU hash map outside any object (e.g. a per-CPU connection table).
    public static func createLRUHash(name: String, keySize: Int, valueSize: Int, maxEntries: Int) throws(BPFError) -> BPFMap {
        try create(type: BPF_MAP_TYPE_LRU_HASH, name: name, keySize: keySize, valueSize: valueSize, maxEntries: maxEntries)
    }

    // MARK: Pinning

    public func pin(at path: String) throws(BPFError) {
        try check("pin map '\(name)' at \(path)", bpf_obj_pin(fd, path))
    }

    // MARK: Element access

    private func checkSizes<Key: BitwiseCopyable, Value: BitwiseCopyable>(_: Key.Type, _: Value.Type, perCPU: Bool = false) {
        precondition(MemoryLayout<Key>.size == keySize, "map \(name): key is \(keySize) bytes, not \(MemoryLayout<Key>.size)")
        precondition(MemoryLayout<Value>.size == valueSize, "map \(name): value is \(valueSize) bytes, not \(MemoryLayout<Value>.size)")
        precondition(perCPU == isPerCPU, "map \(name): use the per-CPU accessors on per-CPU maps only")
    }

    /// Writes one element. `flags` is BPF_ANY, BPF_NOEXIST or BPF_EXIST.
    public func update<Key: BitwiseCopyable, Value: BitwiseCopyable>(_ key: Key, _ value: Value, flags: UInt64 = UInt64(BPF_ANY)) throws(BPFError) {
        checkSizes(Key.self, Value.self)
        var key = key, value = value
        let result = bpf_map_update_elem(fd, &key, &value, flags)
        try check("update map '\(name)'", result)
    }

    /// Reads one element, or nil if the key is absent.
    public func lookup<Key: BitwiseCopyable, Value: BitwiseCopyable>(_ key: Key, as _: Value.Type = Value.self) throws(BPFError) -> Value? {
        checkSizes(Key.self, Value.self)
        var key = key
        let value = UnsafeMutablePointer<Value>.allocate(capacity: 1)
        defer { value.deallocate() }
        if bpf_map_lookup_elem(fd, &key, value) != 0 {
            if Glibc.errno == ENOENT { return nil }
            throw BPFError("look up map '\(name)'", errno: Glibc.errno)
        }
        return value.pointee
    }

    /// Deletes one element; returns false if it was absent.
    @discardableResult
    public func delete<Key: BitwiseCopyable>(_ key: Key) throws(BPFError) -> Bool {
        precondition(MemoryLayout<Key>.size == keySize)
        var key = key
        if bpf_map_delete_elem(fd, &key) != 0 {
            if Glibc.errno == ENOENT { return false }
            throw BPFError("delete from map '\(name)'", errno: Glibc.errno)
        }
        return true
    }

    /// Every key of a hash map (a snapshot; the kernel may change it meanwhile).
    public func keys<Key: BitwiseCopyable>(as _: Key.Type) throws(BPFError) -> [Key] {
        precondition(MemoryLayout<Key>.size == keySize)
        var result: [Key] = []
        let current = UnsafeMutablePointer<Key>.allocate(capacity: 1)
        let next = UnsafeMutablePointer<Key>.allocate(capacity: 1)
        defer { current.deallocate(); next.deallocate() }
        var status = bpf_map_get_next_key(fd, nil, next)
        while status == 0 {
            result.append(next.pointee)
            current.pointee = next.pointee
            status = bpf_map_get_next_key(fd, current, next)
        }
        if Glibc.errno != ENOENT { throw BPFError("list keys of map '\(name)'", errno: Glibc.errno) }
        return result
    }

    /// Stores another map's fd in a map-of-maps.
    public func setInnerMap(at index: UInt32, to inner: BPFMap) throws(BPFError) {
        var key = index
        var value = UInt32(inner.fd)
        try check("store map '\(inner.name)' in '\(name)'[\(index)]", bpf_map_update_elem(fd, &key, &value, UInt64(BPF_ANY)))
    }

    // MARK: Per-CPU maps

    /// The number of CPUs the kernel keeps per-CPU values for.
    public static let possibleCPUs: Int = Int(libbpf_num_possible_cpus())

    /// Reads one element of a per-CPU map: one value per possible CPU.
    public func lookupPerCPU<Key: BitwiseCopyable, Value: BitwiseCopyable>(_ key: Key, as _: Value.Type = Value.self) throws(BPFError) -> [Value] {
        checkSizes(Key.self, Value.self, perCPU: true)
        // The kernel lays the per-CPU copies out 8-byte aligned.
        let stride = (valueSize + 7) & ~7
        let cpus = BPFMap.possibleCPUs
        var key = key
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: stride * cpus, alignment: 8)
        defer { buffer.deallocate() }
        if bpf_map_lookup_elem(fd, &key, buffer) != 0 {
            throw BPFError("look up per-CPU map '\(name)'", errno: Glibc.errno)
        }
        return (0..<cpus).map { buffer.loadUnaligned(fromByteOffset: $0 * stride, as: Value.self) }
    }

    /// Sets one element of a per-CPU map to the same value on every CPU.
    public func updatePerCPU<Key: BitwiseCopyable, Value: BitwiseCopyable>(_ key: Key, _ value: Value) throws(BPFError) {
        checkSizes(Key.self, Value.self, perCPU: true)
        let stride = (valueSize + 7) & ~7
        let cpus = BPFMap.possibleCPUs
        var key = key
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: stride * cpus, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: stride * cpus)
        for cpu in 0..<cpus { buffer.storeBytes(of: value, toByteOffset: cpu * stride, as: Value.self) }
        try check("update per-CPU map '\(name)'", bpf_map_update_elem(fd, &key, buffer, UInt64(BPF_ANY)))
    }

    // MARK: Array values

    /// Writes one element whose value is an array of `values.count` elements
    /// (e.g. a whole ring row), in one system call.
    public func update<Element: BitwiseCopyable>(_ key: UInt32, elements values: [Element]) throws(BPFError) {
        precondition(keySize == MemoryLayout<UInt32>.size)
        precondition(values.count * MemoryLayout<Element>.stride == valueSize, "map \(name): value is \(valueSize) bytes")
        var key = key
        let result = values.withUnsafeBytes { bpf_map_update_elem(fd, &key, $0.baseAddress, UInt64(BPF_ANY)) }
        try check("update map '\(name)'", result)
    }

    /// Reads one element whose value is an array of `Element`s.
    public func lookup<Element: BitwiseCopyable>(_ key: UInt32, elementsOf _: Element.Type) throws(BPFError) -> [Element]? {
        precondition(keySize == MemoryLayout<UInt32>.size && valueSize % MemoryLayout<Element>.stride == 0)
        var key = key
        var values = [Element](unsafeUninitializedCapacity: valueSize / MemoryLayout<Element>.stride) { buffer, count in
            count = buffer.count
        }
        let result = values.withUnsafeMutableBytes { bpf_map_lookup_elem(fd, &key, $0.baseAddress) }
        if result != 0 {
            if Glibc.errno == ENOENT { return nil }
            throw BPFError("look up map '\(name)'", errno: Glibc.errno)
        }
        return values
    }
}
