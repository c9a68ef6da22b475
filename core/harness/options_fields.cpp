// The field tables of the option sections (options.h): every DataOptions, LmConfig, TrainOptions
// and BkCoreOptions option with its type, range or choices, help, and member access. The default
// of each option is its struct's default (read from a default-constructed struct), so it is
// written once, in the struct.
#include "rbk/options.h"

#include <cstdint>
#include <stdexcept>

namespace rbk {
namespace {

using nlohmann::json;

// Upper bounds that only keep a typo from allocating the machine away; none is a modelling limit.
constexpr double kMaxCount = 1e12;   // steps, tokens, bytes
constexpr double kMaxWidth = 1e6;    // d_model, heads, experts
constexpr double kMaxSeq = 1e9;      // n_seq, seq_len

template <class S, class T>
OptionField<S> int_field(const char* name, T S::*m, double lo, double hi, const char* help) {
  OptionField<S> f;
  f.name = name;
  f.type = ParamType::Int;
  f.min = lo;
  f.max = hi;
  f.help = help;
  f.get = [m](const S& s) { return json(static_cast<int64_t>(s.*m)); };
  f.set = [m](S& s, const json& j) { s.*m = static_cast<T>(j.get<int64_t>()); };
  return f;
}

template <class S>
OptionField<S> real_field(const char* name, double S::*m, double lo, double hi, const char* help) {
  OptionField<S> f;
  f.name = name;
  f.type = ParamType::Real;
  f.min = lo;
  f.max = hi;
  f.help = help;
  f.get = [m](const S& s) { return json(s.*m); };
  f.set = [m](S& s, const json& j) { s.*m = j.get<double>(); };
  return f;
}

template <class S>
OptionField<S> bool_field(const char* name, bool S::*m, const char* help) {
  OptionField<S> f;
  f.name = name;
  f.type = ParamType::Bool;
  f.help = help;
  f.get = [m](const S& s) { return json(s.*m); };
  f.set = [m](S& s, const json& j) { s.*m = j.get<bool>(); };
  return f;
}

template <class S>
OptionField<S> string_field(const char* name, std::string S::*m, std::vector<std::string> choices, const char* help) {
  OptionField<S> f;
  f.name = name;
  f.type = ParamType::String;
  f.choices = std::move(choices);
  f.help = help;
  f.get = [m](const S& s) { return json(s.*m); };
  f.set = [m](S& s, const json& j) { s.*m = j.get<std::string>(); };
  return f;
}

// A choice stored as an enum: to_text / from_text convert.
template <class S, class E>
OptionField<S> enum_field(const char* name, E S::*m, std::vector<std::string> choices, std::string (*to_text)(E),
                          E (*from_text)(const std::string&), const char* help) {
  OptionField<S> f;
  f.name = name;
  f.type = ParamType::String;
  f.choices = std::move(choices);
  f.help = help;
  f.get = [m, to_text](const S& s) { return json(to_text(s.*m)); };
  f.set = [m, from_text](S& s, const json& j) { s.*m = from_text(j.get<std::string>()); };
  return f;
}

std::string compat_execution_text(CompatExecution e) { return e == CompatExecution::TensorOps ? "tensor_ops" : "scalar_loop"; }
CompatExecution parse_compat_execution(const std::string& s) {
  if (s == "scalar_loop") return CompatExecution::ScalarLoop;
  if (s == "tensor_ops") return CompatExecution::TensorOps;
  throw std::invalid_argument("compat execution '" + s + "': expected scalar_loop or tensor_ops");
}
std::string forward_text(BkForwardMode m) { return to_string(m); }
std::string gradient_text(BkGradientMode g) { return to_string(g); }
std::string context_text(BkContext c) { return to_string(c); }
std::string layout_text(BatchLayout l) { return to_string(l); }

}  // namespace

const std::vector<std::string>& arch_choices() {
  static const std::vector<std::string> v{"resnet_bk", "transformer", "mamba", "rwkv"};
  return v;
}
const std::vector<std::string>& init_choices() {
  static const std::vector<std::string> v{"torch_default", "papertime"};
  return v;
}
const std::vector<std::string>& block_choices() {
  static const std::vector<std::string> v{"poc", "papertime"};
  return v;
}
const std::vector<std::string>& router_choices() {
  static const std::vector<std::string> v{"learned_topk", "switch_top1", "gumbel_hard", "scattering_phase"};
  return v;
}
const std::vector<std::string>& bk_forward_choices() {
  static const std::vector<std::string> v{"stable", "compat_poc", "compat_papertime", "compat_papertime_triton"};
  return v;
}
const std::vector<std::string>& bk_gradient_choices() {
  static const std::vector<std::string> v{"exact", "papertime_hybrid", "head_hybrid", "autograd"};
  return v;
}
const std::vector<std::string>& bk_context_choices() {
  static const std::vector<std::string> v{"bidirectional", "causal"};
  return v;
}
const std::vector<std::string>& prime_bump_choices() {
  static const std::vector<std::string> v{"none", "simple", "potential"};
  return v;
}
const std::vector<std::string>& act_choices() {
  static const std::vector<std::string> v{"none", "compat", "skip"};
  return v;
}
const std::vector<std::string>& act_signal_choices() {
  static const std::vector<std::string> v{"phase", "learned"};
  return v;
}
const std::vector<std::string>& position_choices() {
  static const std::vector<std::string> v{"auto", "learned", "none", "sinusoidal", "rotary"};
  return v;
}
const std::vector<std::string>& precision_choices() {
  static const std::vector<std::string> v{"fp32", "bf16"};
  return v;
}
const std::vector<std::string>& schedule_choices() {
  static const std::vector<std::string> v{"constant", "cosine"};
  return v;
}
const std::vector<std::string>& layout_choices() {
  static const std::vector<std::string> v{"correct", "upstream_time_major"};
  return v;
}
const std::vector<std::string>& corpus_format_choices() {
  static const std::vector<std::string> v{"auto", "text", "jsonl"};
  return v;
}
const std::vector<std::string>& tokenizer_choices() {
  static const std::vector<std::string> v{"word", "gpt2_bpe"};
  return v;
}
const std::vector<std::string>& compat_execution_choices() {
  static const std::vector<std::string> v{"scalar_loop", "tensor_ops"};
  return v;
}

const std::vector<OptionField<DataOptions>>& data_option_fields() {
  using D = DataOptions;
  static const std::vector<OptionField<D>> fields{
      string_field("data_dir", &D::data_dir, {},
                   "corpus directory with <name>.{train,valid,test} splits (relative: cwd, then repo root)"),
      string_field("format", &D::format, corpus_format_choices(), "corpus format (auto: jsonl for *.jsonl/*.json)"),
      string_field("tokenizer", &D::tokenizer, tokenizer_choices(), "word: whitespace vocabulary of train; gpt2_bpe: GPT-2 BPE"),
      int_field("vocab_top_k", &D::vocab_top_k, 0, 1e8, "word tokenizer: 0 = <unk> + every train type, K = <unk> + top K-1"),
      string_field("bpe_dir", &D::bpe_dir, {}, "gpt2_bpe: directory with encoder.json and vocab.bpe"),
      int_field("train_max_bytes", &D::train_max_bytes, 0, kMaxCount, "read at most this many bytes of train (0 = all)"),
      int_field("eval_max_bytes", &D::eval_max_bytes, 0, kMaxCount, "read at most this many bytes of valid and test (0 = all)"),
  };
  return fields;
}

const std::vector<OptionField<LmConfig>>& lm_config_fields() {
  using M = LmConfig;
  static const std::vector<OptionField<M>> fields{
      string_field("arch", &M::arch, arch_choices(), "model family"),
      int_field("vocab_size", &M::vocab_size, 0, 1e8, "vocabulary V (0 = from the tokenizer)"),
      int_field("d_model", &M::d_model, 1, kMaxWidth, "width D"),
      int_field("n_layers", &M::n_layers, 1, 1e4, "blocks L"),
      int_field("n_seq", &M::n_seq, 1, kMaxSeq, "longest sequence N (rows of a learned position table)"),
      string_field("position", &M::position, position_choices(),
                   "auto = the arch's own (learned: resnet_bk, transformer; none: mamba, rwkv); rotary: transformer only"),
      real_field("dropout", &M::dropout, 0, 0.99, "dropout probability"),
      string_field("init", &M::init, init_choices(), "initialisation (torch_default = PoC, papertime = N(0,0.02) + xavier)"),
      string_field("block", &M::block, block_choices(), "ResNet-BK block form"),
      int_field("num_experts", &M::num_experts, 1, 1e4, "ResNet-BK MoE experts E"),
      int_field("top_k", &M::top_k, 1, 1e4, "ResNet-BK experts per token (<= num_experts)"),
      string_field("router", &M::router, router_choices(), "ResNet-BK MoE router"),
      string_field("moe_dispatch", &M::moe_dispatch, {"gather", "dense", "grouped"},
                   "ResNet-BK MoE with a sparse router: gather (each expert on its tokens), dense (every expert on "
                   "every token, no host sync, E x the expert FLOPs) or grouped (each expert on its tokens over "
                   "padded tiles, no host sync)"),
      real_field("legacy_scattering_scale", &M::legacy_scattering_scale, 0, 100, "upstream's gate modulation (0.1 upstream, 0 off)"),
      real_field("scattering_epsilon", &M::scattering_epsilon, 1e-12, 1e6, "scattering-phase router epsilon"),
      string_field("bk_forward", &M::bk_forward, bk_forward_choices(), "BK-Core forward"),
      string_field("bk_gradient", &M::bk_gradient, bk_gradient_choices(), "BK-Core gradient"),
      string_field("bk_context", &M::bk_context, bk_context_choices(), "BK-Core context (causal: stable forward only)"),
      real_field("bk_z_real", &M::bk_z_real, -1e6, 1e6, "Re z of BK-Core's spectral parameter"),
      real_field("bk_z_imag", &M::bk_z_imag, 0, 1e6, "Im z of BK-Core's spectral parameter (> 0; upstream 1)"),
      string_field("prime_bump", &M::prime_bump, prime_bump_choices(), "Prime-Bump position-table initialisation"),
      real_field("prime_bump_scale", &M::prime_bump_scale, -100, 100, "Prime-Bump scale"),
      real_field("prime_bump_epsilon", &M::prime_bump_epsilon, 1e-12, 1e6, "Prime-Bump potential width epsilon"),
      bool_field("bk_lap", &M::bk_lap, "LAP weighting of the BK features by (1 + x^2)^-bk_lap_s (papertime block)"),
      real_field("bk_lap_s", &M::bk_lap_s, 0, 64, "LAP weight exponent s of <x>^-s"),
      int_field("semiseparable_rank", &M::semiseparable_rank, -1, kMaxWidth,
                "H = T + U V^T with learned rank-r U, V (0 = off, as upstream's model path; -1 = ceil(log2 n_seq))"),
      string_field("act", &M::act, act_choices(), "adaptive computation (compat: halting counted, nothing skipped)"),
      string_field("act_signal", &M::act_signal, act_signal_choices(), "ACT halting signal"),
      real_field("act_threshold", &M::act_threshold, 1e-6, 1, "ACT cumulative halting probability that halts a token"),
      int_field("act_min_layers", &M::act_min_layers, 0, 1e4, "ACT: blocks every token runs before it may halt"),
      int_field("n_heads", &M::n_heads, 1, 1e4, "Transformer attention heads (divides d_model)"),
      int_field("ffn_dim", &M::ffn_dim, 1, 1e8, "Transformer FFN / RWKV channel-mixing width"),
      bool_field("tie_weights", &M::tie_weights, "tie head and token embedding (transformer, mamba, rwkv)"),
      int_field("expand", &M::expand, 1, 64, "Mamba inner width / d_model"),
      int_field("d_state", &M::d_state, 1, 256, "Mamba state size"),
      int_field("d_conv", &M::d_conv, 1, 64, "Mamba depthwise conv width"),
      int_field("dt_rank", &M::dt_rank, 0, kMaxWidth, "Mamba Delta rank (0 = ceil(d_model / 16))"),
  };
  return fields;
}

const std::vector<OptionField<TrainOptions>>& train_option_fields() {
  using T = TrainOptions;
  static const std::vector<OptionField<T>> fields{
      int_field("batch_size", &T::batch_size, 1, 1 << 20, "streams per batch B"),
      int_field("seq_len", &T::seq_len, 1, kMaxSeq, "tokens per training sequence (<= model.n_seq)"),
      enum_field("layout", &T::layout, layout_choices(), &layout_text, &parse_batch_layout,
                 "batch layout (upstream_time_major = the PoC bug, resnet_bk only)"),
      int_field("epochs", &T::epochs, 1, 1e6, "epochs"),
      int_field("max_steps", &T::max_steps, 0, kMaxCount, "cap on optimizer steps (0 = none)"),
      real_field("lr", &T::lr, 0, 10, "peak AdamW learning rate"),
      real_field("weight_decay", &T::weight_decay, 0, 10, "AdamW weight decay"),
      real_field("beta1", &T::beta1, 0, 0.999999, "AdamW beta1"),
      real_field("beta2", &T::beta2, 0, 0.999999, "AdamW beta2"),
      real_field("eps", &T::eps, 0, 1, "AdamW epsilon"),
      string_field("schedule", &T::schedule, schedule_choices(), "learning-rate schedule (cosine to min_lr_ratio * lr)"),
      int_field("warmup_steps", &T::warmup_steps, 0, kMaxCount, "linear warm-up steps"),
      real_field("min_lr_ratio", &T::min_lr_ratio, 0, 1, "cosine floor / lr"),
      real_field("clip_norm", &T::clip_norm, 0, 1e6, "gradient clipping 2-norm (0 = off)"),
      int_field("grad_accum", &T::grad_accum, 1, 1 << 20, "micro-batches per optimizer step"),
      real_field("spike_factor", &T::spike_factor, 0, 1e6, "loss > factor * EMA(loss) after 50 steps = divergence (0 = off)"),
      real_field("divergence_factor", &T::divergence_factor, 0, 1e6,
                 "evaluated loss above factor x its running minimum for patience evaluations = divergence (0 = off)"),
      int_field("divergence_patience", &T::divergence_patience, 1, 1e6, "consecutive evaluations of the divergence rule"),
      int_field("eval_every", &T::eval_every, 0, kMaxCount, "optimizer steps between validation evaluations (0 = never)"),
      int_field("eval_tokens", &T::eval_tokens, 0, kMaxCount, "validation tokens per evaluation (0 = all)"),
      bool_field("checkpoint_blocks", &T::checkpoint_blocks, "recompute each block's activations in backward"),
      int_field("loss_chunk_tokens", &T::loss_chunk_tokens, 0, kMaxCount, "head + cross-entropy in chunks of this many tokens (0 = plain)"),
      int_field("checkpoint_every", &T::checkpoint_every, 0, kMaxCount, "optimizer steps between checkpoints (0 = each epoch)"),
      int_field("log_every", &T::log_every, 0, kMaxCount, "steps between progress lines / metric records"),
      string_field("precision", &T::precision, precision_choices(), "fp32, or bf16 autocast (CUDA only)"),
      int_field("sync_every", &T::sync_every, 0, kMaxCount, "steps between host reads of the losses (0 = auto)"),
  };
  return fields;
}

const std::vector<OptionField<BkCoreOptions>>& bk_core_option_fields() {
  using B = BkCoreOptions;
  static const std::vector<OptionField<B>> fields = [] {
    std::vector<OptionField<B>> f{
        enum_field("forward", &B::forward, bk_forward_choices(), &forward_text, &parse_forward_mode, "BK-Core forward"),
        enum_field("gradient", &B::gradient, bk_gradient_choices(), &gradient_text, &parse_gradient_mode, "BK-Core gradient"),
        enum_field("context", &B::context, bk_context_choices(), &context_text, &parse_context,
                   "BK-Core context (causal: stable forward only)"),
    };
    OptionField<B> re;
    re.name = "z_real";
    re.type = ParamType::Real;
    re.min = -1e6;
    re.max = 1e6;
    re.help = "Re z of BK-Core's spectral parameter";
    re.get = [](const B& b) { return json(b.z.real()); };
    re.set = [](B& b, const json& j) { b.z = c10::complex<double>(j.get<double>(), b.z.imag()); };
    OptionField<B> im = re;
    im.name = "z_imag";
    im.min = 0;
    im.help = "Im z of BK-Core's spectral parameter (> 0; upstream 1)";
    im.get = [](const B& b) { return json(b.z.imag()); };
    im.set = [](B& b, const json& j) { b.z = c10::complex<double>(b.z.real(), j.get<double>()); };
    f.push_back(re);
    f.push_back(im);
    f.push_back(enum_field("compat_execution", &B::compat_execution, compat_execution_choices(), &compat_execution_text,
                           &parse_compat_execution, "compat recursion as scalar loops or batched tensor ops"));
    return f;
  }();
  return fields;
}

}  // namespace rbk
