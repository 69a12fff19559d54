#!/usr/bin/env bash
# Integration tests are grouped into one binary per package (`tests/it/main.rs`, the binary's
# `tests/e2e/main.rs`): a file in such a folder that no `mod` line names is never compiled or
# run, and nothing else would notice. Run by `.ci/run`.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
for main in crates/*/tests/*/main.rs bins/*/tests/*/main.rs; do
  dir=$(dirname "$main")
  for file in "$dir"/*.rs "$dir"/*/mod.rs; do
    [[ -e $file ]] || continue
    [[ $file == "$main" ]] && continue
    name=${file#"$dir"/}
    module=${name%/mod.rs}
    module=${module%.rs}
    if ! grep -Eq "^(pub )?mod ${module};" "$main"; then
      echo "check-test-modules: $file is not declared in $main (add \`mod ${module};\`)" >&2
      status=1
    fi
  done
done
exit $status
