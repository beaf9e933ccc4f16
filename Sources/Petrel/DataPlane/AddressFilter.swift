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

    init<Keys: Sequence>(vips keys: Keys) where Keys.Element == VipKey {
        for key in keys { slots[AddressFilter.slot(of: key.address), default: 0] |= AddressFilter.bits(of: key) }
    }

    static func slot(of address: IPAddress) -> UInt32 {
        let words = address.abiWords
        return petrel_addr_filter_slot(words.0, words.1, words.2, words.3)
    }

    static func bits(of key: VipKey) -> UInt32 {
        guard key.port == 0 else { return UInt32(PETREL_ADDR_VIP) }
        return UInt32(PETREL_ADDR_VIP) | UInt32(key.proto == .tcp ? PETREL_ADDR_TCP_WILDCARD : PETREL_ADDR_UDP_WILDCARD)
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
