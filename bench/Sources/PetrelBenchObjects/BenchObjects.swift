// The benchmark's own BPF programs (bench/bpf/*.bpf.c: the restore wrapper, the
// live-rate generator and the XDP_TX baseline), embedded by the same build plugin
// as the product's programs but kept out of the shipped library.
@_exported import PetrelObjects
