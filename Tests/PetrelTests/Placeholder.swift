import Testing
@testable import Petrel
@Test func placeholder() { #expect(PetrelVersion.string == "0.1.0") }
