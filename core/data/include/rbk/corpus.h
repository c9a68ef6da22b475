// Text corpora for the language-model experiments (claim C05 and the later LM claims): readers for
// the formats users have, split discovery, and token streams cached in a binary file.
//
// Formats (upstream-audit §11 lists what the upstream scripts read):
//  * WikiText-2/103 `wiki.{train,valid,test}.tokens` and `.raw`, and our default State of the
//    Union corpus `sotu.{train,valid,test}.txt` (same " = heading = " layout), Penn Treebank
//    `ptb.{train,valid,test}.txt`, plain text: one text line per file line;
//  * JSON lines (C4 / The Pile shards): one object per line with a string field "text".
// Every problem (missing file, empty split, malformed JSON line, invalid UTF-8) is a CorpusError
// naming the file and the 1-based line.
#pragma once
#include <torch/torch.h>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace rbk {

struct CorpusError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class CorpusFormat { Auto, Text, JsonLines };
std::string to_string(CorpusFormat f);
CorpusFormat parse_corpus_format(const std::string& s);  // "auto", "text", "jsonl"

struct CorpusText {
  std::string path;
  std::vector<std::string> lines;  // UTF-8 checked; JSON-lines records split at '\n' into lines
  int64_t n_bytes = 0;             // UTF-8 bytes of the text, counting one '\n' per line
};

// Auto picks JsonLines for *.jsonl / *.json, Text otherwise. max_bytes > 0 stops reading after
// that many bytes of text (whole lines), for reduced presets.
CorpusText read_corpus(const std::string& path, CorpusFormat format = CorpusFormat::Auto, int64_t max_bytes = 0);

// Finds the file of one split ("train", "valid", "test") in a directory by the known names
// (wiki.<s>.tokens, wiki.<s>.raw, ptb.<s>.txt, sotu.<s>.txt, <s>.txt, <s>.jsonl; "validation" is
// accepted for "valid"). Throws CorpusError listing what was tried.
std::string find_split_file(const std::string& dir, const std::string& split);

// Throws CorpusError("<path>:<line>: invalid UTF-8 at byte <k>") for malformed UTF-8.
void check_utf8(const std::string& s, const std::string& path, int64_t line);

// FNV-1a 64 of bytes: content fingerprints for token caches (not cryptographic, only change
// detection).
uint64_t fnv1a64(const std::string& bytes, uint64_t seed = 1469598103934665603ULL);

// A tokenised split: one 1-D id stream in file order.
struct TokenStream {
  torch::Tensor ids;   // (T,) int64
  int64_t n_bytes = 0; // UTF-8 bytes of the source text (for bits per byte)
  std::string source;  // file it came from
};

class Tokenizer;

// Encodes a corpus file with tok, through a binary cache <cache_dir>/<stem>.<fingerprint>.ids
// keyed by the tokenizer's fingerprint, the file's content hash and max_bytes; a corrupt or
// mismatching cache is rebuilt. cache_dir "" disables caching.
TokenStream load_token_stream(const std::string& path, const Tokenizer& tok, const std::string& cache_dir,
                              CorpusFormat format = CorpusFormat::Auto, int64_t max_bytes = 0);

// The raw cache format (little-endian): "RBKTOK01", uint64 key, int64 n_bytes, int64 count,
// count x int32 ids. Exposed for tests.
void write_token_cache(const std::string& path, uint64_t key, const TokenStream& s);
bool read_token_cache(const std::string& path, uint64_t key, TokenStream& s);  // false: absent/mismatch

}  // namespace rbk
