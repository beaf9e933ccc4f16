# The start every demo script shares: sourced from the repository's root after
# `cd`, it checks for root, defines `say`, installs what is missing, builds Petrel
# and sets BIN to the directory of the built binaries.
#   usage: source scripts/lib/demo.sh <script name> <why root is needed>

say() { printf '\n== %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { echo "$1: run as root ($2 need it)" >&2; exit 1; }

say "Installing what is missing and building Petrel"
source scripts/install-deps.sh
export PATH=/opt/swift/usr/bin:$PATH
swift build >&2
BIN=$(swift build --show-bin-path)
