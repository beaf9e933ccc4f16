import Foundation
import PetrelBPF
import PetrelTestObjects
import Testing

/// The generic ring-buffer reader against a real BPF program in the kernel: each test
/// run of `ringbuf_echo` writes one record (the packet's first four bytes and its length).
@Suite("BPF ring-buffer reader")
struct RingBufferReaderTests {
    /// The echo program, its ring and its lost-record counter, loaded fresh per test.
    struct Echo {
        let object: BPFObject
        let program: BPFProgram
        let ring: BPFMap
        let lost: BPFMap

        init() throws {
            object = try BPFObject(name: "ringbuf_echo", elf: EmbeddedBPFObject.ringbufEcho.bytes)
            try object.load()
            program = try object.program(named: "petrel_ringbuf_echo")
            ring = try object.map(named: "echo_records")
            lost = try object.map(named: "echo_lost")
        }

        /// One record with `sequence`; the packet is padded to an Ethernet header's length.
        func emit(_ sequence: UInt32, repetitions: UInt32 = 1, wakeReader: Bool = true) throws {
            var packet = withUnsafeBytes(of: sequence.littleEndian) { Array($0) } + [wakeReader ? 0 : 1]
            packet += [UInt8](repeating: 0, count: 60 - packet.count)
            _ = try program.testRun(packet: packet, repetitions: repetitions)
        }

        func lostRecords() throws -> UInt64 { try lost.lookup(UInt32(0), as: UInt64.self) ?? 0 }
    }

    /// Collects what the reader's thread hands over.
    final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [(sequence: UInt32, length: UInt32)] = []
        func add(_ bytes: UnsafeRawBufferPointer) {
            let item = (bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self), bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            lock.withLock { items.append(item) }
        }
        var all: [(sequence: UInt32, length: UInt32)] { lock.withLock { items } }
        /// Waits (at most `seconds`) until `count` records have come.
        func wait(for count: Int, seconds: Double = 5) -> Int {
            let deadline = Date().addingTimeInterval(seconds)
            while all.count < count && Date() < deadline { usleep(2000) }
            return all.count
        }
    }

    /// How many of this process's fds refer to the map with `id` (from /proc/self/fdinfo).
    static func openFDs(toMap id: UInt32) -> Int {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fdinfo")) ?? []
        return entries.filter { entry in
            guard let info = try? String(contentsOfFile: "/proc/self/fdinfo/\(entry)", encoding: .utf8) else { return false }
            return info.split(separator: "\n").contains("map_id:\t\(id)")
        }.count
    }

    @Test("Every record reaches the handler once, in order, with its bytes")
    func recordsInOrder() throws {
        let echo = try Echo()
        let collected = Collected()
        let reader = try BPFRingBufferReader(map: echo.ring) { collected.add($0) }
        defer { reader.stop() }
        for sequence in UInt32(0)..<200 { try echo.emit(sequence) }
        #expect(collected.wait(for: 200) == 200)
        let records = collected.all
        #expect(records.map(\.sequence) == Array(0..<200))
        #expect(records.allSatisfy { $0.length == 60 })
        #expect(reader.recordsRead == 200)
        #expect(try echo.lostRecords() == 0)
    }

    @Test("A full ring refuses records (the program counts them); a reader started later drains what was kept")
    func fullRing() throws {
        let echo = try Echo()
        // 4096 bytes hold 256 records of 8 bytes plus the kernel's 8-byte header.
        for sequence in UInt32(0)..<300 { try echo.emit(sequence) }
        let lost = try echo.lostRecords()
        #expect(lost > 0)
        let collected = Collected()
        let reader = try BPFRingBufferReader(map: echo.ring) { collected.add($0) }
        defer { reader.stop() }
        let kept = 300 - Int(lost)
        #expect(collected.wait(for: kept) == kept)
        #expect(collected.all.map(\.sequence) == Array(0..<UInt32(kept)), "the oldest records are kept, the newest refused")
        // Drained, the ring takes records again.
        try echo.emit(1000)
        #expect(collected.wait(for: kept + 1) == kept + 1)
        #expect(collected.all.last?.sequence == 1000)
    }

    @Test("stop() returns promptly while the program keeps writing and a slow handler lags, and frees the reader's fds")
    func stopUnderLoad() throws {
        let echo = try Echo()
        let baseline = Self.openFDs(toMap: echo.ring.id)
        let collected = Collected()
        let reader = try BPFRingBufferReader(map: echo.ring) { bytes in
            collected.add(bytes)
            usleep(200)  // slower than the producer
        }
        #expect(Self.openFDs(toMap: echo.ring.id) == baseline + 1, "the reader holds one fd of its own")
        let producing = NSLock()
        nonisolated(unsafe) var keepProducing = true
        let producer = Thread {
            while producing.withLock({ keepProducing }) { try? echo.emit(7, repetitions: 64) }
        }
        producer.start()
        defer { producing.withLock { keepProducing = false } }
        _ = collected.wait(for: 100)
        let started = Date()
        reader.stop()
        let took = Date().timeIntervalSince(started)
        #expect(took < 1.0, "stop() took \(took) s")
        let readAtStop = reader.recordsRead
        usleep(20000)
        #expect(reader.recordsRead == readAtStop, "no record is handled after stop()")
        #expect(readAtStop >= 100)
        #expect(Self.openFDs(toMap: echo.ring.id) == baseline, "stop() closed the reader's fd")
        reader.stop()  // a second stop does nothing
    }

    @Test("Readers started and released many times leave no fd behind")
    func noLeaks() throws {
        let echo = try Echo()
        let baseline = Self.openFDs(toMap: echo.ring.id)
        for round in 0..<40 {
            let collected = Collected()
            let reader = try BPFRingBufferReader(map: echo.ring) { collected.add($0) }
            try echo.emit(UInt32(round))
            #expect(collected.wait(for: 1) == 1)
            if round.isMultiple(of: 2) { reader.stop() }  // the others stop as they are released
        }
        #expect(Self.openFDs(toMap: echo.ring.id) == baseline)
    }

    @Test("Records submitted without a wakeup are read by a reader that drains on a timer, and only by it")
    func drainWithoutWakeup() throws {
        let echo = try Echo()
        let woken = Collected()
        let wokenOnly = try BPFRingBufferReader(map: echo.ring) { woken.add($0) }
        try echo.emit(1, wakeReader: false)
        usleep(200_000)
        #expect(woken.all.isEmpty, "no wakeup, no timer: the record waits")
        wokenOnly.stop()
        let drained = Collected()
        let draining = try BPFRingBufferReader(map: echo.ring, drainEveryMilliseconds: 20) { drained.add($0) }
        defer { draining.stop() }
        try echo.emit(2, wakeReader: false)
        #expect(drained.wait(for: 2) == 2)
        #expect(drained.all.map(\.sequence) == [1, 2])
    }

    @Test("A map that is not a ring buffer is refused, naming it")
    func notARing() throws {
        let echo = try Echo()
        #expect {
            _ = try BPFRingBufferReader(map: echo.lost) { _ in }
        } throws: { error in
            "\(error)".contains("echo_lost")
        }
    }
}
