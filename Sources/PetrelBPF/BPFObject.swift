import CLibBPF
import Glibc

/// A BPF object file opened from memory: resize or adopt its maps, load it, then
/// reach its programs and maps by name.
/// `@unchecked Sendable`: `isLoaded` changes only in `load()`, which its owner calls once
/// before the object is shared; everything else is immutable.
public final class BPFObject: @unchecked Sendable {
    public let name: String
    let handle: OpaquePointer
    private let image: UnsafeMutableRawBufferPointer  // libbpf reads the ELF from here until close
    public private(set) var isLoaded = false

    /// Opens (does not load) an ELF object held in memory.
    public init(name: String, elf: [UInt8]) throws(BPFError) {
        let image = UnsafeMutableRawBufferPointer.allocate(byteCount: elf.count, alignment: 8)
        image.copyBytes(from: elf)
        let opened: OpaquePointer? = name.withCString { cName in
            withLibbpfOptions(bpf_object_open_opts.self) { options in
                options.pointee.object_name = cName
                return bpf_object__open_mem(image.baseAddress, elf.count, options)
            }
        }
        guard let opened, libbpf_get_error(UnsafeRawPointer(opened)) == 0 else {
            image.deallocate()
            throw BPFError("open BPF object '\(name)'", errno: Glibc.errno)
        }
        self.name = name
        self.handle = opened
        self.image = image
    }

    deinit {
        bpf_object__close(handle)
        image.deallocate()
    }

    private func mapHandle(_ mapName: String) throws(BPFError) -> OpaquePointer {
        guard let map = bpf_object__find_map_by_name(handle, mapName) else {
            throw BPFError("find map '\(mapName)' in object '\(name)'", errno: ENOENT)
        }
        return map
    }

    // MARK: Before loading

    /// Sets a map's capacity (only before `load`).
    public func setMaxEntries(of mapName: String, to entries: Int) throws(BPFError) {
        try check("resize map '\(mapName)' to \(entries)", bpf_map__set_max_entries(try mapHandle(mapName), UInt32(entries)))
    }

    /// Sets a map's value size (only before `load`; for maps declared by sizes).
    public func setValueSize(of mapName: String, to bytes: Int) throws(BPFError) {
        try check("set value size of map '\(mapName)' to \(bytes)", bpf_map__set_value_size(try mapHandle(mapName), UInt32(bytes)))
    }

    /// Sets the program's read-only globals (its `.rodata`, e.g. `const volatile`
    /// settings) before `load`. The verifier treats them as constants.
    public func setReadOnlyData<T: BitwiseCopyable>(_ value: T) throws(BPFError) {
        let map = try mapHandle(".rodata")
        let size = Int(bpf_map__value_size(map))
        guard size == MemoryLayout<T>.size else {
            throw BPFError("set .rodata of '\(name)': it holds \(size) bytes, not \(MemoryLayout<T>.size)", errno: EINVAL)
        }
        var value = value
        try check("set .rodata of '\(name)'", bpf_map__set_initial_value(map, &value, size))
    }

    /// Makes the object use an existing map (e.g. one pinned by an earlier process)
    /// instead of creating its own.
    public func reuse(map mapName: String, from existing: BPFMap) throws(BPFError) {
        try check("reuse map '\(mapName)'", bpf_map__reuse_fd(try mapHandle(mapName), existing.fd))
    }

    /// Loads every program and creates the maps. On failure the error carries
    /// libbpf's messages, including the verifier log.
    public func load() throws(BPFError) {
        let (result, log) = LibbpfLog.capturing { bpf_object__load(handle) }
        if result != 0 {
            throw BPFError("load BPF object '\(name)'", errno: result == -1 ? Glibc.errno : -result, log: log)
        }
        isLoaded = true
    }

    /// libxdp loads an object itself when it attaches it.
    func markLoaded() { isLoaded = true }

    // MARK: After loading

    public func map(named mapName: String) throws(BPFError) -> BPFMap {
        precondition(isLoaded, "load the object before using its maps")
        let fd = bpf_map__fd(try mapHandle(mapName))
        if fd < 0 { throw BPFError("get fd of map '\(mapName)'", errno: -fd) }
        // The object owns this fd; a dup keeps the BPFMap valid on its own.
        let own = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        if own < 0 { throw BPFError("dup fd of map '\(mapName)'", errno: Glibc.errno) }
        return try BPFMap(name: mapName, fd: own, ownsFD: true)
    }

    public func program(named programName: String) throws(BPFError) -> BPFProgram {
        guard let program = bpf_object__find_program_by_name(handle, programName) else {
            throw BPFError("find program '\(programName)' in object '\(name)'", errno: ENOENT)
        }
        let fd = bpf_program__fd(program)
        if fd < 0 { throw BPFError("get fd of program '\(programName)' (is the object loaded?)", errno: -fd) }
        let own = fcntl(fd, F_DUPFD_CLOEXEC, 0)
        if own < 0 { throw BPFError("dup fd of program '\(programName)'", errno: Glibc.errno) }
        return BPFProgram(name: programName, fd: own)
    }
}
