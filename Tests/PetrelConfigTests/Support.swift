import Foundation
import PetrelConfig

/// The start every inline test config shares: the two required settings, lines 1-3.
let minimalYAML = """
    interface: eth0
    next_hop:
      mac: "02:00:00:00:02:01"

    """

/// The issues `ConfigLoader` reports for `yaml`; empty when it accepts the text.
func issues(in yaml: String) -> [ConfigIssue] {
    do {
        _ = try ConfigLoader.parse(yaml: yaml, fileName: "test.yaml")
        return []
    } catch {
        return error.issues
    }
}

/// The repository's `config/` directory, found from this source file.
let configDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("config")
