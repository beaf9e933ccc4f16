import PetrelBPF
import PetrelObjects
import CPetrelABI
public enum PetrelVersion { public static let string = "0.1.0" }
