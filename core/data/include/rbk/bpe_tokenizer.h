// GPT-2 byte-level BPE (encoder.json + vocab.bpe of GPT-2, 50,257 tokens), written from the
// algorithm: bytes -> printable unicode map, GPT-2's pre-tokenisation pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// implemented by hand (std::regex has no \p{L}), then greedy lowest-rank pair merges per word.
// Used by the later long-context / quantisation experiments (upstream-audit §2.4, §11), where
// the upstream scripts use GPT-2 BPE.
#pragma once
#include "rbk/tokenizer.h"

#include <map>
#include <memory>
#include <mutex>

namespace rbk {

class Gpt2BpeTokenizer : public Tokenizer {
 public:
  // Throws CorpusError naming the file for missing files, malformed JSON, or a merge line
  // without two symbols.
  static Gpt2BpeTokenizer load(const std::string& encoder_json, const std::string& vocab_bpe);
  // From in-memory tables (tests): token -> id and merges in rank order.
  static Gpt2BpeTokenizer from_tables(std::unordered_map<std::string, int32_t> encoder,
                                      std::vector<std::pair<std::string, std::string>> merges);

  int64_t vocab_size() const override { return static_cast<int64_t>(decoder_.size()); }
  void encode_line(const std::string& text, std::vector<int32_t>& out) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  uint64_t fingerprint() const override { return fingerprint_; }
  std::string kind() const override { return "gpt2_bpe"; }

  std::vector<int32_t> encode(const std::string& text) const;

 private:
  std::vector<std::string> bpe(const std::string& word_unicode) const;
  std::unordered_map<std::string, int32_t> encoder_;
  std::vector<std::string> decoder_;
  std::map<std::pair<std::string, std::string>, int32_t> ranks_;
  std::string byte_to_unicode_[256];
  std::unordered_map<std::string, uint8_t> unicode_to_byte_;
  uint64_t fingerprint_ = 0;
  // Word -> merged tokens memo (most words repeat); guarded so encode is usable from threads.
  mutable std::shared_ptr<std::mutex> cache_mutex_ = std::make_shared<std::mutex>();
  mutable std::shared_ptr<std::unordered_map<std::string, std::vector<int32_t>>> cache_ =
      std::make_shared<std::unordered_map<std::string, std::vector<int32_t>>>();
};

// GPT-2 pre-tokenisation of UTF-8 text (exposed for tests).
std::vector<std::string> gpt2_pretokenize(const std::string& text);

}  // namespace rbk
