// The types of the BPF access layer that Petrel's public API uses, so that
// `import Petrel` alone is enough to call it (the README's example does).
// Only these: the rest of PetrelBPF (maps, objects, fds) stays behind the library.
@_exported import struct PetrelBPF.NetworkInterface
@_exported import enum PetrelBPF.XDPMode
@_exported import class PetrelBPF.BPFProgram
@_exported import struct PetrelBPF.BPFError
