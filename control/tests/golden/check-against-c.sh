#!/bin/sh
# Compiles ipvsadm_printf.c (ipvsadm's printf formats over the data of
# control/tests/golden.rs) and compares its output with every golden file.
# Needs a C compiler and glibc (its qsort is the one ipvsadm sorts with).
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
cc -O0 -Wall -o "$bin" "$dir/ipvsadm_printf.c"
status=0
for f in "$dir"/*.txt; do
    name=$(basename "$f")
    if "$bin" "$name" | cmp -s - "$f"; then
        echo "same: $name"
    else
        echo "DIFFERENT: $name"
        "$bin" "$name" | diff "$f" - || true
        status=1
    fi
done
exit $status
