// Evaluation of language models (claim C05 and later LM claims): token-level perplexity and bits
// per byte on a held-out stream, and count-based unigram / bigram references on the same split.
// Unlike upstream (audit §11: only training-set averages), every number here is on held-out text
// unless its name says "train".
#pragma once
#include "rbk/corpus.h"
#include "rbk/lm_loss.h"
#include "rbk/language_model.h"
#include "rbk/trainer.h"

#include <nlohmann/json.hpp>

namespace rbk {

struct EvalResult {
  double mean_nll = 0.0;         // nats per scored token
  double ppl = 0.0;              // exp(mean_nll)
  double bits_per_token = 0.0;
  double bits_per_byte = 0.0;    // total bits / source bytes of the scored fraction of the stream
  int64_t tokens = 0;            // scored tokens
  nlohmann::json to_json() const;
};

// Scores the stream with the training batching (batchify(B), chunks of N, same layout), model in
// eval mode, no gradient. Chunks that do not fill N are scored too (the last, shorter chunk).
// precision "bf16": forward under CUDA autocast, loss from fp32 logits (as the trainer).
// The head and the NLL are computed loss_chunk_tokens tokens at a time (lm_loss.h), never holding
// the (B n x V) logits; loss_chunk_tokens <= 0 takes the plain full-logits path. The two agree up
// to fp32 summation order (|relative difference of mean_nll| < 1e-5 on the unit-test models,
// tests/lm/test_lm_loss.cpp). The summed NLL stays on the device until the end (one host read).
EvalResult evaluate_language_model(LanguageModel& model, const TokenStream& stream, int64_t batch_size,
                                   int64_t seq_len, BatchLayout layout, torch::Device device = torch::kCPU,
                                   const std::string& precision = "fp32",
                                   int64_t loss_chunk_tokens = kDefaultLossChunkTokens);

// Count-based references on token ids (V = vocabulary size). Every token t >= 1 of eval_ids is
// predicted from train counts:
//   unigram: add-one smoothed  p(w) = (c(w) + 1) / (T + V)
//   bigram:  lambda p_ML(w | prev) + (1 - lambda) p_unigram(w), p_ML = 0 for unseen prev
EvalResult unigram_reference(const torch::Tensor& train_ids, const TokenStream& eval, int64_t vocab_size);
EvalResult bigram_reference(const torch::Tensor& train_ids, const TokenStream& eval, int64_t vocab_size, double lambda);

}  // namespace rbk
