#!/usr/bin/env bash
# Runs every test: Swift unit tests, packet tests on the real BPF program in the
# kernel (BPF_PROG_TEST_RUN), end-to-end tests in network namespaces, daemon and
# CLI tests, and the benchmark harness in quick mode. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (BPF, XDP and network namespaces need it)" >&2; exit 1; }

source scripts/install-deps.sh
export PATH=/opt/swift/usr/bin:$PATH

swift build --build-tests
# Test binaries run the embedded BPF programs; they need no path to any object.
if [ $# -gt 0 ]; then
    exec swift test --skip-build "$@"
fi
# The benchmark harness's quick run saturates every CPU for a while; it runs on its
# own first, so the end-to-end tests' one-second rounds never compete with it.
swift test --skip-build --filter BenchTests
swift test --skip-build --skip BenchTests
# The README's library example, as a package of its own that depends on Petrel (its
# main.swift is the README's code: ReadmeExampleTests): it must keep compiling.
swift build --package-path Examples/LibraryExample
