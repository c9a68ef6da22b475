// Mamba-1 selective scan: the sequential LibTorch reference and the dispatching entry point with
// its autograd Function around the CUDA kernels (see selective_scan.h; issue 7, Mamba baseline).
#include "rbk/selective_scan.h"

#include "rbk/cuda_glue/kernels_linked.h"
#include "rbk/cuda_glue/selective_scan_cuda.h"

#include <array>
#include <stdexcept>
#include <string>

namespace rbk {
namespace {

using torch::Tensor;

void check_shape(const Tensor& t, const char* name, std::initializer_list<int64_t> shape) {
  const std::vector<int64_t> want(shape);
  TORCH_CHECK(t.defined(), "selective_scan: ", name, " is required");
  TORCH_CHECK(t.sizes().vec() == want, "selective_scan: ", name, " must be ", c10::IntArrayRef(want), ", got ",
              t.sizes());
}

// Checks every shape against u (Bt, Dm, L) and A (Dm, N); returns {Bt, Dm, L, N}.
std::array<int64_t, 4> check_inputs(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& B,
                                    const Tensor& C, const Tensor& D, const Tensor& z, const Tensor& delta_bias) {
  TORCH_CHECK(u.defined() && u.dim() == 3, "selective_scan: u must be (Bt, Dm, L), got ",
              u.defined() ? u.sizes() : c10::IntArrayRef{});
  TORCH_CHECK(A.defined() && A.dim() == 2, "selective_scan: A must be (Dm, N)");
  const int64_t Bt = u.size(0), Dm = u.size(1), L = u.size(2), N = A.size(1);
  check_shape(delta, "delta", {Bt, Dm, L});
  check_shape(A, "A", {Dm, N});
  check_shape(B, "B", {Bt, N, L});
  check_shape(C, "C", {Bt, N, L});
  if (D.defined()) check_shape(D, "D", {Dm});
  if (z.defined()) check_shape(z, "z", {Bt, Dm, L});
  if (delta_bias.defined()) check_shape(delta_bias, "delta_bias", {Dm});
  TORCH_CHECK(!A.is_complex(), "selective_scan: complex A is not supported (Mamba-1 LM uses real A)");
  return {Bt, Dm, L, N};
}

}  // namespace

Tensor selective_scan_reference(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& B,
                                const Tensor& C, const Tensor& D, const Tensor& z, const Tensor& delta_bias,
                                bool delta_softplus) {
  const auto dims = check_inputs(u, delta, A, B, C, D, z, delta_bias);
  const int64_t L = dims[2];
  // Compute dtype: fp64 for an fp64 oracle, fp32 otherwise (16-bit inputs are promoted explicitly).
  const auto ct = u.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const Tensor uu = u.to(ct), Ac = A.to(ct), Bc = B.to(ct), Cc = C.to(ct);
  Tensor dt = delta.to(ct);
  if (delta_bias.defined()) dt = dt + delta_bias.to(ct).view({1, -1, 1});
  if (delta_softplus) dt = torch::softplus(dt);  // threshold 20, as upstream's log1p(exp(x)) for x <= 20
  // (Bt, Dm, L, N): decay exp(dt A) and input dt B u of every step; elementwise only (no matmul,
  // so autocast cannot lower the precision of anything here).
  const Tensor dA = torch::exp(dt.unsqueeze(-1) * Ac.view({1, Ac.size(0), 1, Ac.size(1)}));
  const Tensor dBu = (dt * uu).unsqueeze(-1) * Bc.transpose(1, 2).unsqueeze(1);
  std::vector<Tensor> hs;
  hs.reserve(static_cast<size_t>(L));
  Tensor h = torch::zeros({dims[0], dims[1], dims[3]}, uu.options());
  for (int64_t t = 0; t < L; ++t) {
    h = dA.select(2, t) * h + dBu.select(2, t);  // (Bt, Dm, N)
    hs.push_back(h);
  }
  const Tensor H = torch::stack(hs, 2);                                  // (Bt, Dm, L, N)
  Tensor y = (H * Cc.transpose(1, 2).unsqueeze(1)).sum(-1);              // (Bt, Dm, L)
  if (D.defined()) y = y + D.to(ct).view({1, -1, 1}) * uu;
  if (z.defined()) y = y * torch::silu(z.to(ct));
  return y.to(u.scalar_type());
}

bool selective_scan_kernel_eligible(const Tensor& u, const Tensor& A) {
  const auto st = u.scalar_type();
  return cuda::cuda_kernels_linked() && u.is_cuda() && (st == torch::kFloat || st == torch::kBFloat16 || st == torch::kHalf) &&
         A.dim() == 2 && A.size(1) >= 1 && A.size(1) <= kSelectiveScanKernelMaxState;
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Gradient in the dtype of its input (the kernel works in fp32); undefined stays undefined.
Tensor like(const Tensor& g, const Tensor& input) { return input.defined() && g.defined() ? g.to(input.scalar_type()) : Tensor(); }

// LibTorch >= 2 refuses undefined tensors as inputs of an autograd Function (VariableInfo needs a
// device), so absent D / z / delta_bias travel as 0-element placeholders (real ones have Dm >= 1 or
// Bt Dm L >= 1 elements) and are turned back into undefined tensors inside.
Tensor placeholder_if_absent(const Tensor& t, const Tensor& u) {
  return t.defined() ? t : torch::empty({0}, u.options().dtype(torch::kFloat));
}
Tensor absent_if_placeholder(const Tensor& t) { return t.defined() && t.numel() > 0 ? t : Tensor(); }

struct SelectiveScanCudaFunction : public torch::autograd::Function<SelectiveScanCudaFunction> {
  static Tensor forward(AutogradContext* ctx, const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& B,
                        const Tensor& C, const Tensor& D, const Tensor& z, const Tensor& delta_bias,
                        bool delta_softplus) {
    auto res = cuda::selective_scan_fwd_cuda(u, delta, A, B, C, absent_if_placeholder(D), absent_if_placeholder(z),
                                             absent_if_placeholder(delta_bias), delta_softplus);
    ctx->save_for_backward({u, delta, A, B, C, D, z, delta_bias, res[1]});
    ctx->saved_data["softplus"] = delta_softplus;
    return res[0].to(u.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const auto s = ctx->get_saved_variables();
    const bool softplus = ctx->saved_data["softplus"].toBool();
    // s: u, delta, A, B, C, D, z, delta_bias (the last three possibly placeholders), chunk_states
    const Tensor D = absent_if_placeholder(s[5]), z = absent_if_placeholder(s[6]), bias = absent_if_placeholder(s[7]);
    auto g = cuda::selective_scan_bwd_cuda(s[0], s[1], s[2], s[3], s[4], D, z, bias, softplus, s[8], grad_outputs[0]);
    // g: du, ddelta, dA, dB, dC, dD, dz, ddelta_bias (undefined for absent D / z / bias)
    return {like(g[0], s[0]), like(g[1], s[1]), like(g[2], s[2]), like(g[3], s[3]), like(g[4], s[4]),
            like(g[5], D), like(g[6], z), like(g[7], bias), Tensor()};
  }
};

}  // namespace

Tensor selective_scan(const Tensor& u, const Tensor& delta, const Tensor& A, const Tensor& B, const Tensor& C,
                      const Tensor& D, const Tensor& z, const Tensor& delta_bias, bool delta_softplus,
                      SelectiveScanImpl impl) {
  check_inputs(u, delta, A, B, C, D, z, delta_bias);
  const bool eligible = selective_scan_kernel_eligible(u, A);
  if (impl == SelectiveScanImpl::Kernel && !eligible)
    throw std::invalid_argument("selective_scan: the CUDA kernel cannot run these inputs (needs a CUDA build, CUDA "
                                "float32/bfloat16/half u and N <= " + std::to_string(kSelectiveScanKernelMaxState) +
                                "; got " + std::string(c10::toString(u.scalar_type())) + " on " + u.device().str() +
                                ", N = " + std::to_string(A.size(1)) + ")");
  if (impl == SelectiveScanImpl::Reference || !eligible)
    return selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus);
  return SelectiveScanCudaFunction::apply(u, delta, A, B, C, placeholder_if_absent(D, u), placeholder_if_absent(z, u),
                                          placeholder_if_absent(delta_bias, u), delta_softplus);
}

}  // namespace rbk
