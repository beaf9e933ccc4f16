// swift-tools-version: 6.0
// The README's library example as a package of its own, depending on Petrel as a user's
// service would (here by path). scripts/test.sh builds it, so the example keeps compiling.
import PackageDescription

let package = Package(
    name: "LibraryExample",
    dependencies: [
        .package(name: "Petrel", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "LibraryExample",
            dependencies: [.product(name: "Petrel", package: "Petrel")]
        ),
    ]
)
