/// libbpf's and libxdp's option structs (`bpf_xdp_query_opts`, `bpf_object_open_opts`,
/// ...) start with their size, and the library refuses one (EINVAL, "has non-zero
/// extra bytes") if any byte past the last field it knows is not zero, tail
/// padding included. A struct built in Swift (`bpf_xdp_query_opts()`) sets its
/// fields but not its padding, which keeps whatever the stack held: in an
/// optimised build the call then fails at random. So options are made here, in
/// memory zeroed byte by byte, with `sz` set.
func withLibbpfOptions<Options, Result, Failure: Error>(
    _: Options.Type, _ body: (UnsafeMutablePointer<Options>) throws(Failure) -> Result
) throws(Failure) -> Result {
    let size = MemoryLayout<Options>.stride  // C's sizeof, tail padding included
    let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: MemoryLayout<Options>.alignment)
    defer { raw.deallocate() }
    raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
    raw.storeBytes(of: size, as: Int.self)  // every options struct starts with `size_t sz`
    let options = raw.bindMemory(to: Options.self, capacity: 1)
    // Fields are set through the pointer (`options.pointee.field = ...`), which
    // writes that field alone: the padding stays zero.
    return try body(options)
}
