// Passkey retrieval and multi-query associative recall generators, accuracy and a small training
// loop (context_probes.h; issue 19).
#include "rbk/context_probes.h"

#include "rbk/torch_compat.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <random>
#include <stdexcept>

namespace rbk {

std::string to_string(ProbeKind k) { return k == ProbeKind::Passkey ? "passkey" : "assoc_recall"; }

ProbeKind probe_kind_from_string(const std::string& s) {
  if (s == "passkey") return ProbeKind::Passkey;
  if (s == "assoc_recall") return ProbeKind::AssociativeRecall;
  throw std::invalid_argument("probe kind '" + s + "': expected passkey or assoc_recall");
}

namespace {

void require(bool ok, const std::string& field, int64_t value, const std::string& expected) {
  if (!ok) throw std::invalid_argument("probe." + field + " = " + std::to_string(value) + ": expected " + expected);
}

// Uniform integer in [0, n).
int64_t draw(std::mt19937_64& gen, int64_t n) {
  return static_cast<int64_t>(std::uniform_int_distribution<uint64_t>(0, static_cast<uint64_t>(n - 1))(gen));
}

}  // namespace

void ProbeSpec::validate() const {
  require(vocab.n_filler >= 1, "n_filler", vocab.n_filler, ">= 1");
  require(vocab.n_values >= 2, "n_values", vocab.n_values, ">= 2");
  if (kind == ProbeKind::Passkey) {
    // [KEY_MARK, value] somewhere before the final query mark.
    require(seq_len >= 4, "seq_len", seq_len, ">= 4 for passkey");
    if (depth > 1.0)
      throw std::invalid_argument("probe.depth = " + std::to_string(depth) + ": expected <= 1 (negative = random)");
  } else {
    require(vocab.n_keys >= 1, "n_keys", vocab.n_keys, ">= 1 for assoc_recall");
    require(n_pairs >= 1 && n_pairs <= vocab.n_keys, "n_pairs", n_pairs, "in [1, n_keys]");
    require(n_queries >= 1 && n_queries <= n_pairs, "n_queries", n_queries, "in [1, n_pairs]");
    require(seq_len >= 2 * n_pairs + 2 * n_queries, "seq_len", seq_len, ">= 2 n_pairs + 2 n_queries");
  }
}

nlohmann::json ProbeSpec::to_json() const {
  nlohmann::json j{{"kind", to_string(kind)},          {"seq_len", seq_len},
                   {"n_filler", vocab.n_filler},       {"n_values", vocab.n_values},
                   {"vocab_size", vocab.size()},       {"chance_accuracy", 1.0 / static_cast<double>(vocab.n_values)}};
  if (kind == ProbeKind::Passkey) {
    j["depth"] = depth < 0 ? nlohmann::json("uniform") : nlohmann::json(depth);
  } else {
    j["n_keys"] = vocab.n_keys;
    j["n_pairs"] = n_pairs;
    j["n_queries"] = n_queries;
  }
  return j;
}

ProbeBatch generate_probe_batch(const ProbeSpec& spec, int64_t batch_size, uint64_t seed) {
  spec.validate();
  if (batch_size < 1) throw std::invalid_argument("probe batch_size = " + std::to_string(batch_size) + ": expected >= 1");
  const int64_t N = spec.seq_len;
  const ProbeVocabulary& v = spec.vocab;
  const int64_t Q = spec.kind == ProbeKind::Passkey ? 1 : spec.n_queries;
  std::mt19937_64 gen(seed * 0x9E3779B97F4A7C15ULL + 0x1234567ULL);
  std::vector<int64_t> ids(static_cast<size_t>(batch_size * N)), pos(static_cast<size_t>(batch_size * Q)),
      ans(pos.size()), keypos(pos.size());
  std::vector<double> depth(static_cast<size_t>(batch_size));
  for (int64_t b = 0; b < batch_size; ++b) {
    int64_t* row = ids.data() + b * N;
    for (int64_t t = 0; t < N; ++t) row[t] = draw(gen, v.n_filler);
    if (spec.kind == ProbeKind::Passkey) {
      // The key mark may sit at 0 .. N-3 (value at +1, query mark at N-1).
      const double d = spec.depth < 0 ? std::uniform_real_distribution<double>(0.0, 1.0)(gen) : spec.depth;
      const int64_t p = static_cast<int64_t>(std::llround(d * static_cast<double>(N - 3)));
      const int64_t value = v.first_value() + draw(gen, v.n_values);
      row[p] = v.key_mark();
      row[p + 1] = value;
      row[N - 1] = v.query_mark();
      pos[b] = N - 1;
      ans[b] = value;
      keypos[b] = p + 1;
      depth[b] = static_cast<double>(p) / static_cast<double>(N - 3);
    } else {
      // Distinct keys: the first n_pairs of a random permutation of the key tokens.
      std::vector<int64_t> keys(static_cast<size_t>(v.n_keys));
      std::iota(keys.begin(), keys.end(), v.first_key());
      for (int64_t i = 0; i < spec.n_pairs; ++i) std::swap(keys[i], keys[i + draw(gen, v.n_keys - i)]);
      std::vector<int64_t> values(static_cast<size_t>(spec.n_pairs));
      for (int64_t i = 0; i < spec.n_pairs; ++i) {
        values[i] = v.first_value() + draw(gen, v.n_values);
        row[2 * i] = keys[i];
        row[2 * i + 1] = values[i];
      }
      // Queries: distinct pairs, in random order, at the end of the sequence.
      std::vector<int64_t> order(static_cast<size_t>(spec.n_pairs));
      std::iota(order.begin(), order.end(), 0);
      for (int64_t i = 0; i < spec.n_queries; ++i) std::swap(order[i], order[i + draw(gen, spec.n_pairs - i)]);
      const int64_t first_query = N - 2 * spec.n_queries;
      for (int64_t q = 0; q < spec.n_queries; ++q) {
        const int64_t i = order[q], t = first_query + 2 * q;
        row[t] = keys[i];
        // The value follows as input (teacher forcing for the next query); it is what is scored at t.
        row[t + 1] = values[i];
        pos[b * Q + q] = t;
        ans[b * Q + q] = values[i];
        keypos[b * Q + q] = 2 * i + 1;
      }
      depth[b] = 0.0;
    }
  }
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  ProbeBatch batch;
  batch.ids = torch::from_blob(ids.data(), {batch_size, N}, i64).clone();
  batch.answer_positions = torch::from_blob(pos.data(), {batch_size, Q}, i64).clone();
  batch.answers = torch::from_blob(ans.data(), {batch_size, Q}, i64).clone();
  batch.key_positions = torch::from_blob(keypos.data(), {batch_size, Q}, i64).clone();
  batch.depth = torch::from_blob(depth.data(), {batch_size}, torch::TensorOptions().dtype(torch::kFloat64)).clone();
  return batch;
}

namespace {

// Logits (B*Q, V) at the answer positions only (never the (B, N, V) logits).
torch::Tensor answer_logits(LanguageModel& model, const ProbeBatch& batch, torch::Device device, bool bf16) {
  AutocastGuard autocast(bf16 && device.is_cuda());
  const auto ids = batch.ids.to(device);
  const auto h = model.forward_features(ids);  // (B, N, D)
  const auto pos = batch.answer_positions.to(device);
  const auto idx = pos.unsqueeze(-1).expand({pos.size(0), pos.size(1), h.size(-1)});
  const auto picked = h.gather(1, idx).reshape({-1, h.size(-1)});  // (B*Q, D)
  return model.apply_head(picked).to(torch::kFloat32);
}

}  // namespace

torch::Tensor probe_loss(LanguageModel& model, const ProbeBatch& batch, torch::Device device, bool bf16) {
  const auto logits = answer_logits(model, batch, device, bf16);
  return torch::nn::functional::cross_entropy(logits, batch.answers.reshape({-1}).to(device));
}

double probe_accuracy(LanguageModel& model, const ProbeBatch& batch, torch::Device device, const std::string& precision) {
  const bool was_training = model.is_training();
  model.eval();
  double acc = 0.0;
  {
    torch::NoGradGuard no_grad;
    const auto logits = answer_logits(model, batch, device, precision == "bf16");
    const auto hit = logits.argmax(-1).eq(batch.answers.reshape({-1}).to(device));
    acc = hit.to(torch::kFloat64).mean().item<double>();
  }
  model.train(was_training);
  return acc;
}

nlohmann::json ProbeTrainResult::to_json() const {
  return {{"status", status}, {"steps", steps}, {"diverged_step", diverged_step < 0 ? nlohmann::json(nullptr) : nlohmann::json(diverged_step)},
          {"final_loss", std::isfinite(final_loss) ? nlohmann::json(final_loss) : nlohmann::json(nullptr)},
          {"seconds", seconds}};
}

ProbeTrainResult train_on_probe(LanguageModel& model, const ProbeSpec& spec, const ProbeTrainOptions& o) {
  spec.validate();
  const auto t0 = std::chrono::steady_clock::now();
  ProbeTrainResult r;
  model.to(o.device);
  model.train();
  torch::optim::AdamW optim(model.parameters(), torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  const bool bf16 = o.precision == "bf16";
  for (int64_t step = 0; step < o.steps; ++step) {
    const ProbeBatch batch = generate_probe_batch(spec, o.batch_size, o.seed * 1000003ULL + static_cast<uint64_t>(step));
    optim.zero_grad();
    auto loss = probe_loss(model, batch, o.device, bf16);
    const double l = loss.item<double>();
    r.losses.push_back(l);
    r.steps = step + 1;
    if (!std::isfinite(l)) {
      r.status = "diverged";
      r.diverged_step = step;
      break;
    }
    loss.backward();
    const double gnorm = o.clip_norm > 0 ? torch::nn::utils::clip_grad_norm_(model.parameters(), o.clip_norm)
                                         : std::numeric_limits<double>::quiet_NaN();
    if (o.clip_norm > 0 && !std::isfinite(gnorm)) {
      r.status = "diverged";
      r.diverged_step = step;
      break;
    }
    optim.step();
    if (o.log_every > 0 && (step + 1) % o.log_every == 0)
      std::fprintf(stderr, "%sprobe step %lld loss %.4f\n", o.label.c_str(), (long long)(step + 1), l);
  }
  const size_t tail = std::min<size_t>(20, r.losses.size());
  double s = 0.0;
  for (size_t i = r.losses.size() - tail; i < r.losses.size(); ++i) s += r.losses[i];
  r.final_loss = tail > 0 ? s / static_cast<double>(tail) : std::numeric_limits<double>::quiet_NaN();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace rbk
