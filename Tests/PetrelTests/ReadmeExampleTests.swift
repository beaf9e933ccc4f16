import Foundation
import Testing

/// The README's library example is the code of Examples/LibraryExample, which
/// scripts/test.sh builds as a package of its own: so the README's code compiles.
@Suite struct ReadmeExampleTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("The README's library example is Examples/LibraryExample's main.swift")
    func readmeShowsTheBuiltExample() throws {
        let readme = try String(contentsOf: Self.root.appendingPathComponent("README.md"), encoding: .utf8)
        let example = try String(contentsOf: Self.root.appendingPathComponent("Examples/LibraryExample/Sources/LibraryExample/main.swift"),
                                 encoding: .utf8)
        let section = try #require(readme.range(of: "## Using the library"))
        let start = try #require(readme.range(of: "```swift\n", range: section.upperBound..<readme.endIndex))
        let end = try #require(readme.range(of: "```", range: start.upperBound..<readme.endIndex))
        #expect(String(readme[start.upperBound..<end.lowerBound]) == example)
    }
}
