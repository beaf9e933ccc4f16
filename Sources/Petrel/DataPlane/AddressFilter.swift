import CPetrelABI
import PetrelBPF

/// The VIP address filter as the control plane writes it (map vip_addresses; see
/// PETREL_ADDR_FILTER_SLOTS in petrel_abi.h): per slot, the PETREL_ADDR_* bits of
/// every VIP address in that slot. A slot may hold more bits than its VIPs need
/// (that only costs the data plane a lookup), never fewer: a VIP is added to the
/// filter before its entry is written, and dropped from it after its entry is gone.
struct AddressFilter: Equatable {
    /// The non-zero slots.
    private(set) var slots: [UInt32: UInt32] = [:]

    init() {}

    init(vips: [VipKey: VipFlags]) {
        for (key, flags) in vips { slots[AddressFilter.slot(of: key.address), default: 0] |= AddressFilter.bits(of: key, flags: flags, among: vips) }
    }

    static func slot(of address: IPAddress) -> UInt32 {
        let words = address.abiWords
        return petrel_addr_filter_slot(words.0, words.1, words.2, words.3)
    }

    /// The bits one VIP needs in its slot, given every VIP (`vips`).
    static func bits(of key: VipKey, flags: VipFlags, among vips: [VipKey: VipFlags]) -> UInt32 {
        var bits = UInt32(PETREL_ADDR_VIP)
        if key.port == 0 { bits |= UInt32(key.proto == .tcp ? PETREL_ADDR_TCP_WILDCARD : PETREL_ADDR_UDP_WILDCARD) }
        // Its packets need the VIP's flags before the tables (PETREL_ADDR_VIP_FIRST) ...
        if flags.contains(.lruBypass) || flags.contains(.quic) { bits |= UInt32(PETREL_ADDR_VIP_FIRST) }
        // ... or a flow's VIP depends on which of an exact and a wildcard VIP exists.
        if key.port != 0 && vips[VipKey(address: key.address, port: 0, proto: key.proto)] != nil { bits |= UInt32(PETREL_ADDR_VIP_FIRST) }
        return bits
    }

    /// Every bit of either filter.
    func union(_ other: AddressFilter) -> AddressFilter {
        var result = self
        for (slot, bits) in other.slots { result.slots[slot, default: 0] |= bits }
        return result
    }

    /// The (slot, word) writes that turn the map from self into `target`.
    func writes(to target: AddressFilter) -> [(slot: UInt32, bits: UInt32)] {
        Set(slots.keys).union(target.slots.keys).sorted().compactMap { slot in
            let bits = target.slots[slot] ?? 0
            return bits == (slots[slot] ?? 0) ? nil : (slot, bits)
        }
    }
}
