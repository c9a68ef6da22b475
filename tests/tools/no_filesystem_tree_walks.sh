#!/bin/sh
# Refuses std::filesystem::remove_all and recursive fs::copy in rbk's C++ sources. Under the
# LibTorch 2.11 wheel remove_all crashed every process that called it (the wheel exports its own
# copy of libstdc++'s filesystem symbols, pytorch/pytorch#133437): the GPU machine's unexplained
# unit-test segfaults were remove_all in test scratch clean-ups. Recursive copies walk trees the
# same way and were not tried there: avoided too. (recursive_directory_iterator passed there.)
# Use rbk::remove_directory_tree (rbk/results.h) or `cp -R` instead. Usage: no_filesystem_tree_walks.sh <repo root> <scratch dir>
set -u
root=$1 scratch=$2
pattern='remove_all[[:space:]]*\(|copy_options::recursive'
# Comment lines may name them (they explain why not).
scan() { grep -rnE --include='*.cpp' --include='*.h' --include='*.cc' --include='*.cu' "$pattern" "$@" | grep -vE '^[^:]+:[0-9]+:[[:space:]]*//'; }
# The pattern must catch a call, or this test could never fail.
mkdir -p "$scratch" && printf 'void f() {\n  std::filesystem::remove_all(p);\n}\n' > "$scratch/probe.cpp"
if ! scan "$scratch" > /dev/null; then echo "no_filesystem_tree_walks: the pattern misses a remove_all call"; exit 1; fi
hits=$(cd "$root" && scan core validation experiments tests tools 2>/dev/null)
if [ -n "$hits" ]; then
  echo "std::filesystem::remove_all or a recursive fs::copy (crash under the LibTorch 2.11 wheel; use rbk::remove_directory_tree or cp -R):"
  echo "$hits"
  exit 1
fi
echo "no std::filesystem::remove_all or recursive fs::copy in the C++ sources"
