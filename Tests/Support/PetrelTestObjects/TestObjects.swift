// The tests' own BPF programs (Tests/bpf/*.bpf.c), embedded by the same build plugin
// as the product's programs but kept out of the shipped library.
@_exported import PetrelObjects
