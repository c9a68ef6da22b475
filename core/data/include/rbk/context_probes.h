// Synthetic context probes (issue 19, claims C12 / C21.long_context): does a language model use
// its context window? Perplexity on a 2.4M-token corpus cannot show that a 1M-token window is
// used; these tasks are generated on the fly from a fixed seed, so no corpus limits their length,
// and their answer is a function of one span of the context only.
//
//  * passkey retrieval: filler tokens, with the pair [KEY_MARK, value] at a controlled relative
//    depth, and the query mark as the last input token; the target at that position is the value.
//  * multi-query associative recall (MQAR): P distinct key tokens each followed by a value token at
//    the start, filler, then Q queries at the end: a key from the pairs, whose target is its
//    value (the value follows as the next input, so that a later query can be scored after it).
//
// Values are drawn uniformly and independently of everything else in the sequence, so a predictor
// that does not read the key span is right with probability 1 / n_values (chance); the unit tests
// check this empirically (experiments/long_context/test_long_context.cpp).
//
// Token layout of the probe vocabulary (ProbeVocabulary): [0, n_filler) filler, then the key mark,
// the query mark, n_values value tokens and (MQAR) n_keys key tokens.
#pragma once
#include "rbk/language_model.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace rbk {

enum class ProbeKind { Passkey, AssociativeRecall };
std::string to_string(ProbeKind k);            // "passkey" | "assoc_recall"
ProbeKind probe_kind_from_string(const std::string& s);  // std::invalid_argument naming the value

struct ProbeVocabulary {
  int64_t n_filler = 64;
  int64_t n_values = 16;   // chance accuracy = 1 / n_values
  int64_t n_keys = 32;     // MQAR keys (passkey uses none)
  int64_t key_mark() const { return n_filler; }
  int64_t query_mark() const { return n_filler + 1; }
  int64_t first_value() const { return n_filler + 2; }
  int64_t first_key() const { return first_value() + n_values; }
  int64_t size() const { return first_key() + n_keys; }
};

struct ProbeSpec {
  ProbeKind kind = ProbeKind::Passkey;
  ProbeVocabulary vocab;
  int64_t seq_len = 256;
  // Passkey: relative depth of the key mark in [0, 1] (0 = first token, 1 = as late as fits);
  // a negative value draws a depth per sequence uniformly.
  double depth = -1.0;
  int64_t n_pairs = 8;     // MQAR: key-value pairs in the context (<= vocab.n_keys)
  int64_t n_queries = 4;   // MQAR: queries at the end (<= n_pairs)
  void validate() const;   // std::invalid_argument naming the field, the value and what is expected
  nlohmann::json to_json() const;
};

struct ProbeBatch {
  torch::Tensor ids;               // (B, N) int64: the model's input
  torch::Tensor answer_positions;  // (B, Q) int64: positions whose next-token prediction is scored
  torch::Tensor answers;           // (B, Q) int64: the value tokens expected there
  torch::Tensor key_positions;     // (B, Q) int64: where the scored value sits in the context
  torch::Tensor depth;             // (B) float64: relative depth of the (first) key span in [0, 1]
};

// batch_size sequences of spec; the same (spec, batch_size, seed) always gives the same batch
// (its own std::mt19937_64, independent of LibTorch's generators).
ProbeBatch generate_probe_batch(const ProbeSpec& spec, int64_t batch_size, uint64_t seed);

// Fraction of answers the model's argmax (over the whole vocabulary) gets right, eval mode, no
// gradient. The head is applied at the answer positions only. precision as the trainer ("bf16"
// only on CUDA).
double probe_accuracy(LanguageModel& model, const ProbeBatch& batch, torch::Device device,
                      const std::string& precision = "fp32");

// Mean cross-entropy of the answers (differentiable; the head at the answer positions only).
torch::Tensor probe_loss(LanguageModel& model, const ProbeBatch& batch, torch::Device device, bool bf16);

struct ProbeTrainOptions {
  int64_t steps = 200;
  int64_t batch_size = 16;
  double lr = 3e-3;
  double weight_decay = 0.01;
  double clip_norm = 1.0;
  uint64_t seed = 0;          // batch seeds: seed * 1'000'003 + step
  std::string precision = "fp32";
  torch::Device device = torch::kCPU;
  int64_t log_every = 0;      // 0 = silent
  std::string label;
};

struct ProbeTrainResult {
  std::string status = "ok";  // "ok" | "diverged" (a non-finite loss or gradient)
  int64_t steps = 0;
  int64_t diverged_step = -1;
  double final_loss = 0.0;    // mean over the last min(20, steps) steps
  double seconds = 0.0;
  std::vector<double> losses;
  nlohmann::json to_json() const;  // without the per-step losses
};

// Trains the model on fresh batches of spec (AdamW, constant lr, gradient clipping), loss on the
// answers only.
ProbeTrainResult train_on_probe(LanguageModel& model, const ProbeSpec& spec, const ProbeTrainOptions& options);

}  // namespace rbk
