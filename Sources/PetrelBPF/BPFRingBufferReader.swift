import CLibBPF
import Foundation
import Glibc

/// Reads a BPF ring buffer (`BPF_MAP_TYPE_RINGBUF`) on a thread of its own and hands
/// every record to `onRecord`, in the order the kernel committed them.
///
/// - The handler runs on the reader's thread; the bytes are valid only during the call
///   (copy what you keep). Keep it short: the kernel drops records (the program sees
///   `bpf_ringbuf_reserve` fail) while the ring is full.
/// - `stop()` (or releasing the reader) returns promptly even while records keep coming:
///   an eventfd wakes the thread, and a busy drain is cut short between two records.
///   Then the thread has ended, and the ring's mapping and every fd are freed.
/// `@unchecked Sendable`: the mutable state (the counters, the stop flag) is behind a lock.
public final class BPFRingBufferReader: @unchecked Sendable {
    public typealias RecordHandler = @Sendable (UnsafeRawBufferPointer) -> Void

    public let mapName: String
    private let loop: Loop

    /// Starts reading `map`, which must be a ring buffer. The reader keeps its own fd
    /// for the map, so `map` may be released meanwhile. `drainEveryMilliseconds`: also
    /// read whatever is there this often, for programs that submit without waking the
    /// reader (BPF_RB_NO_WAKEUP, to save a wakeup per record); nil: only when woken.
    public init(map: BPFMap, threadName: String = "petrel.ringbuf", drainEveryMilliseconds: Int32? = nil,
                onRecord: @escaping RecordHandler) throws(BPFError) {
        mapName = map.name
        loop = try Loop(mapFD: map.fd, mapName: map.name, drainEvery: drainEveryMilliseconds ?? -1, onRecord: onRecord)
        let loop = self.loop
        let thread = Thread { loop.run() }
        thread.name = threadName
        thread.start()
    }

    deinit { stop() }

    /// Records handed to the handler so far.
    public var recordsRead: UInt64 { loop.withState { $0.records } }

    /// Stops reading and waits for the thread to end. Records still in the ring are
    /// left there. Calling it again does nothing.
    public func stop() { loop.stop() }

    // MARK: The thread's side

    /// What the thread owns; it lives until the thread has ended and stop() has
    /// returned, then frees the ring buffer and closes its fds.
    private final class Loop: @unchecked Sendable {
        struct State {
            var records: UInt64 = 0
            var stopping = false
            var finished = false
        }

        private let lock = NSLock()
        private var state = State()
        func withState<T>(_ body: (inout State) -> T) -> T { lock.withLock { body(&state) } }
        private let onRecord: RecordHandler
        private let drainEvery: Int32  // poll(2) timeout: -1 waits for a wakeup
        private var ring: OpaquePointer?
        private var mapFD: Int32  // our own dup: the caller's BPFMap may go first
        private var wake: Int32
        private let done = DispatchSemaphore(value: 0)

        init(mapFD: Int32, mapName: String, drainEvery: Int32, onRecord: @escaping RecordHandler) throws(BPFError) {
            self.onRecord = onRecord
            self.drainEvery = drainEvery
            self.mapFD = fcntl(mapFD, F_DUPFD_CLOEXEC, 0)
            if self.mapFD < 0 { throw BPFError("dup fd of ring buffer '\(mapName)'", errno: Glibc.errno) }
            wake = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
            // From here self is whole: a throw still runs deinit, which closes the fds.
            if wake < 0 { throw BPFError("create the wake-up eventfd for ring buffer '\(mapName)'", errno: Glibc.errno) }
            // libbpf hands the context back to the C callback; it must not retain: the
            // Loop outlives the ring buffer (deinit frees the ring first).
            let context = Unmanaged.passUnretained(self).toOpaque()
            let sample: ring_buffer_sample_fn = { context, data, size in
                let loop = Unmanaged<Loop>.fromOpaque(context!).takeUnretainedValue()
                return loop.deliver(UnsafeRawBufferPointer(start: data, count: size))
            }
            guard let ring = ring_buffer__new(self.mapFD, sample, context, nil) else {
                throw BPFError("open ring buffer '\(mapName)' (is it a BPF_MAP_TYPE_RINGBUF map?)", errno: Glibc.errno)
            }
            self.ring = ring
        }

        deinit { release() }

        /// Frees the ring buffer (its mapping and epoll fd) and closes our fds; the
        /// thread does it as it ends, so stop() returns with everything freed.
        private func release() {
            ring_buffer__free(ring)  // accepts nil
            ring = nil
            for fd in [wake, mapFD] where fd >= 0 { close(fd) }
            (wake, mapFD) = (-1, -1)
        }

        /// Returns 0 to go on, or a negative errno that makes libbpf stop consuming.
        private func deliver(_ record: UnsafeRawBufferPointer) -> Int32 {
            let stopping = withState { state in
                if !state.stopping { state.records += 1 }
                return state.stopping
            }
            if stopping { return -ECANCELED }
            onRecord(record)
            return 0
        }

        func run() {
            defer {
                release()
                done.signal()
            }
            var fds = [
                pollfd(fd: ring_buffer__epoll_fd(ring), events: Int16(POLLIN), revents: 0),
                pollfd(fd: wake, events: Int16(POLLIN), revents: 0),
            ]
            while !withState({ $0.stopping }) {
                let ready = poll(&fds, nfds_t(fds.count), drainEvery)
                if ready < 0 {
                    if Glibc.errno == EINTR { continue }
                    return
                }
                if fds[1].revents != 0 { return }
                if fds[0].revents != 0 || ready == 0 {
                    // Reads every committed record (or stops early: deliver() on stop).
                    _ = ring_buffer__consume(ring)
                }
            }
        }

        func stop() {
            let first = withState { state in
                defer { state.stopping = true }
                return !state.stopping
            }
            guard first else {
                // A concurrent stop() may still be waiting; wait for the thread too.
                while !withState({ $0.finished }) { usleep(1000) }
                return
            }
            var one: UInt64 = 1
            _ = write(wake, &one, MemoryLayout<UInt64>.size)
            done.wait()
            withState { $0.finished = true }
        }
    }
}
