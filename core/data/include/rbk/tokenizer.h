// Tokenizers for the language-model experiments (claim C05 and later LM claims).
//  * WordTokenizer: the PoC's whitespace tokenizer (upstream-audit §2.1, §11): tokens are
//    str.split() of each stripped line, nothing lower-cased, no EOS; the vocabulary is "<unk>"
//    (id 0) plus every distinct train token in first-occurrence order, or (top_k > 0) the top_k
//    most frequent train tokens (ties broken by first occurrence) as in scripts/train.py.
//  * Gpt2BpeTokenizer (bpe_tokenizer.h): GPT-2 byte-level BPE.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace rbk {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual int64_t vocab_size() const = 0;
  // Appends the ids of one text line to out. Line boundaries are the caller's business.
  virtual void encode_line(const std::string& line, std::vector<int32_t>& out) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  // Identifies vocabulary and rules; token caches are keyed by it.
  virtual uint64_t fingerprint() const = 0;
  virtual std::string kind() const = 0;  // "word" | "gpt2_bpe"

  std::vector<int32_t> encode_lines(const std::vector<std::string>& lines) const;
};

class WordTokenizer : public Tokenizer {
 public:
  static constexpr int32_t kUnkId = 0;
  // top_k == 0: every train type (PoC); top_k > 0: "<unk>" + the top_k - 1 most frequent types.
  static WordTokenizer build(const std::vector<std::string>& train_lines, int64_t top_k = 0);
  // One token per line, id = line index; line 0 must be "<unk>". Errors name the file and line.
  static WordTokenizer load(const std::string& vocab_path);
  void save(const std::string& vocab_path) const;
  // From an id -> token list (e.g. stored in a checkpoint); itos[0] must be "<unk>".
  static WordTokenizer from_itos(std::vector<std::string> itos);

  int64_t vocab_size() const override { return static_cast<int64_t>(itos_.size()); }
  void encode_line(const std::string& line, std::vector<int32_t>& out) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  uint64_t fingerprint() const override { return fingerprint_; }
  std::string kind() const override { return "word"; }

  const std::vector<std::string>& itos() const { return itos_; }
  int32_t id_of(const std::string& token) const;  // kUnkId when unknown

 private:
  void finish();
  std::vector<std::string> itos_;
  std::unordered_map<std::string, int32_t> stoi_;
  uint64_t fingerprint_ = 0;
};

// Splits at ASCII whitespace (Python's str.split() for the text we read; the Unicode spaces it
// also splits at are rare enough in these corpora to be listed as a known difference).
void split_whitespace(const std::string& line, std::vector<std::string>& out);

}  // namespace rbk
