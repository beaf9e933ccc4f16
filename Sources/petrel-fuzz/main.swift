// petrel-fuzz: feeds the balancer in the kernel with random and mutated packets and
// checks every verdict, every output byte and every counter.
//
//   swift run -c release petrel-fuzz [--packets N] [--seed S]
import Foundation
import PetrelFuzz

// `petrel-fuzz apply-forever PIN_PATH` is the victim process of the kill-during-apply test.
if CommandLine.arguments.count == 3 && CommandLine.arguments[1] == "apply-forever" {
    try ApplyFaults.applyForever(pinPath: CommandLine.arguments[2])
}

var packets = 10_000_000
var seed = UInt64(Date().timeIntervalSince1970)
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--packets": packets = Int(arguments.next() ?? "") ?? packets
    case "--seed": seed = UInt64(arguments.next() ?? "") ?? seed
    default:
        FileHandle.standardError.write("usage: petrel-fuzz [--packets N] [--seed S]\n".data(using: .utf8)!)
        exit(2)
    }
}

let fuzzer = try PacketFuzzer(seed: seed)
FileHandle.standardError.write("fuzzing \(packets) packets, seed \(seed)\n".data(using: .utf8)!)
let report = try fuzzer.run(packets: packets) { done in
    FileHandle.standardError.write("  \(done) packets\n".data(using: .utf8)!)
}
print("packets: \(report.packets) in \(String(format: "%.1f", report.seconds)) s, seed \(seed)")
print("by kind: " + report.packetsByKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
print("outcomes: " + report.kernel.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.name) \($0.value)" }.joined(separator: ", "))
for failure in report.failures { print("FAILURE \(failure)") }
print(report.failures.isEmpty ? "fuzz: all invariants held" : "fuzz: \(report.failures.count) failures")
exit(report.failures.isEmpty ? 0 : 1)
