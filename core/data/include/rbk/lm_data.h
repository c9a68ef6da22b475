// The one path from DataOptions (options.h, section data.*) to a tokenizer and the train / valid /
// test token streams of a language-model run (claim C05 and every later LM experiment). Programs
// never read corpora or build tokenizers by hand.
//  * data.tokenizer = word: WordTokenizer built on the (byte-limited) train split, vocab_top_k;
//    gpt2_bpe: Gpt2BpeTokenizer from data.bpe_dir/{encoder.json, vocab.bpe}.
//  * Splits are found by corpus.h's find_split_file; streams go through the token cache.
//  * A missing data_dir or bpe_dir is a ConfigError naming data.data_dir / data.bpe_dir, the
//    resolved path and scripts/fetch_corpus.sh; a malformed corpus file is a CorpusError.
#pragma once
#include "rbk/corpus.h"
#include "rbk/options.h"
#include "rbk/tokenizer.h"

#include <nlohmann/json.hpp>
#include <memory>
#include <string>

namespace rbk {

struct LmData {
  DataOptions options;           // as given
  std::string data_dir;          // resolved (resolve_repo_path)
  std::string train_file, valid_file, test_file;
  std::shared_ptr<const Tokenizer> tokenizer;
  // What a checkpoint stores to rebuild the tokenizer (tokenizer_from_meta):
  // {"kind": "word", "itos": [...]} or {"kind": "gpt2_bpe", "encoder_json": abs, "vocab_bpe": abs}.
  nlohmann::json tokenizer_meta;
  TokenStream train, valid, test;  // valid/test empty (ids undefined) when not loaded
  double valid_unk_rate = 0.0;     // fraction of <unk> ids (word tokenizer; 0 for gpt2_bpe)
  double test_unk_rate = 0.0;

  int64_t vocab_size() const { return tokenizer->vocab_size(); }
  // {train_file, tokenizer, vocab_size, train_tokens, valid_tokens, test_tokens, train_bytes,
  //  valid_bytes, test_bytes, valid_unk_rate, test_unk_rate}
  nlohmann::json summary() const;
};

// Which splits to read besides train.
enum class LmSplits { TrainOnly, TrainValid, TrainValidTest };

// Loads tokenizer and splits. cache_dir "" disables the token cache. Throws ConfigError (bad or
// missing directories, named by data.<key>) or CorpusError (malformed files).
LmData load_lm_data(const DataOptions& options, const std::string& cache_dir,
                    LmSplits splits = LmSplits::TrainValidTest);

// The tokenizer of data options alone (word: reads the train split to build the vocabulary).
// meta (optional out) receives the checkpoint record described above.
std::shared_ptr<const Tokenizer> load_tokenizer(const DataOptions& options, nlohmann::json* meta = nullptr);

// Rebuilds a tokenizer from LmData::tokenizer_meta (e.g. a checkpoint's extra.tokenizer).
// Throws ConfigError naming the missing or malformed field.
std::shared_ptr<const Tokenizer> tokenizer_from_meta(const nlohmann::json& meta);

// Fraction of ids equal to WordTokenizer::kUnkId in s (0 for an empty stream).
double unk_rate(const TokenStream& s);

}  // namespace rbk
