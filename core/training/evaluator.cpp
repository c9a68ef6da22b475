// Held-out perplexity, bits per byte and count-based n-gram references (see evaluator.h; claim C05).
#include "rbk/evaluator.h"

#include <cmath>
#include <unordered_map>

namespace rbk {

nlohmann::json EvalResult::to_json() const {
  return {{"mean_nll", mean_nll}, {"ppl", ppl}, {"bits_per_token", bits_per_token}, {"bits_per_byte", bits_per_byte},
          {"tokens", tokens}};
}

namespace {
EvalResult finish(double total_nll, int64_t scored, const TokenStream& s) {
  EvalResult r;
  r.tokens = scored;
  r.mean_nll = total_nll / static_cast<double>(std::max<int64_t>(1, scored));
  r.ppl = std::exp(r.mean_nll);
  r.bits_per_token = r.mean_nll / std::log(2.0);
  // Bytes attributed pro rata to the scored fraction of the stream.
  const double bytes = static_cast<double>(s.n_bytes) * static_cast<double>(scored) / static_cast<double>(s.ids.numel());
  r.bits_per_byte = bytes > 0 ? total_nll / std::log(2.0) / bytes : NAN;
  return r;
}
}  // namespace

EvalResult evaluate_language_model(LanguageModel& model, const TokenStream& s, int64_t batch_size, int64_t seq_len,
                                   BatchLayout layout, torch::Device device, const std::string& precision,
                                   int64_t loss_chunk_tokens) {
  const bool bf16 = wants_bf16_autocast(precision, device);
  const int64_t V = model.config().vocab_size;
  TORCH_CHECK(s.ids.max().item<int64_t>() < V, "evaluate: ", s.source, " has token ids >= vocabulary size ", V);
  auto grid = batchify(s.ids, batch_size).to(device);
  const int64_t cols = grid.size(1);
  const bool was_training = model.is_training();
  model.eval();
  torch::NoGradGuard ng;
  // float64 on the device: the same sequence of double additions as summing on the host.
  auto total_t = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
  int64_t scored = 0;
  for (int64_t i = 0; i + 1 < cols; i += seq_len) {
    const int64_t n = std::min(seq_len, cols - 1 - i);
    auto x = grid.narrow(1, i, n);
    auto y = grid.narrow(1, i + 1, n);
    if (layout == BatchLayout::UpstreamTimeMajor) {
      x = x.t();
      y = y.t();
    }
    total_t += language_model_nll_sum(model, x, y, bf16, loss_chunk_tokens).to(torch::kDouble);
    scored += y.numel();
  }
  model.train(was_training);
  return finish(total_t.item<double>(), scored, s);
}

EvalResult unigram_reference(const torch::Tensor& train_ids, const TokenStream& eval, int64_t V) {
  auto counts = torch::bincount(train_ids.to(torch::kCPU), {}, V).to(torch::kDouble);
  auto logp = ((counts + 1.0) / (static_cast<double>(train_ids.numel()) + static_cast<double>(V))).log();
  auto ids = eval.ids.to(torch::kCPU).narrow(0, 1, eval.ids.numel() - 1);
  const double total = -logp.index_select(0, ids).sum().item<double>();
  return finish(total, ids.numel(), eval);
}

EvalResult bigram_reference(const torch::Tensor& train_ids, const TokenStream& eval, int64_t V, double lambda) {
  auto tr = train_ids.to(torch::kCPU).contiguous();
  const int64_t* t = tr.data_ptr<int64_t>();
  const int64_t T = tr.numel();
  std::unordered_map<int64_t, double> pair;
  std::vector<double> prev(static_cast<size_t>(V), 0.0), uni(static_cast<size_t>(V), 0.0);
  pair.reserve(static_cast<size_t>(T));
  for (int64_t i = 0; i < T; ++i) {
    uni[static_cast<size_t>(t[i])] += 1;
    if (i + 1 < T) {
      pair[t[i] * V + t[i + 1]] += 1;
      prev[static_cast<size_t>(t[i])] += 1;
    }
  }
  auto ev = eval.ids.to(torch::kCPU).contiguous();
  const int64_t* e = ev.data_ptr<int64_t>();
  double total = 0.0;
  for (int64_t i = 1; i < ev.numel(); ++i) {
    const double pu = (uni[static_cast<size_t>(e[i])] + 1.0) / (static_cast<double>(T) + static_cast<double>(V));
    double pb = 0.0;
    const double c = prev[static_cast<size_t>(e[i - 1])];
    if (c > 0) {
      auto it = pair.find(e[i - 1] * V + e[i]);
      if (it != pair.end()) pb = it->second / c;
    }
    total -= std::log(lambda * pb + (1.0 - lambda) * pu);
  }
  return finish(total, ev.numel() - 1, eval);
}

}  // namespace rbk
