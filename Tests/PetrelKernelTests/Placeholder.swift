import Testing
import Petrel
@Test func placeholder2() { }
