/// Petrel's release, reported by `petrel_build_info` and the CLI.
public enum PetrelVersion {
    public static let string = "0.1.0"
}
