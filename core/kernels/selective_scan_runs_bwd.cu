// Mamba-1 selective scan, the "runs" variant (SsVariant::Runs, the default; issue 7's 2x target):
// its backward pass (c); its forward (one channel per lane, sequential over L) is in
// selective_scan_runs_fwd.cu. Same maths and outputs as the forward and bwd_chunk in selective_scan.cu (formulas in
// its file comment), another thread layout for the backward:
//
//   block = 32 channels (the lanes) x 8 warps; warp w owns the run of kRun = 8 steps
//   t0 + 8 w .. t0 + 8 w + 7 of chunk k (t0 = k kSsChunk), and each thread loops over all N states.
//
// Why: in the 4-lanes-per-channel layout every sum over states (y, du, ddelta) costs shuffles, and
// the Nsight Compute profile (notes/baseline_kernels.md) showed ~3 issued warp instructions per
// (channel, state, step) in the backward, about half of them not arithmetic. Here the sums over
// states are per-thread accumulators (registers over the 8 steps of the run), B_t and C_t are
// the same for all 32 lanes (shared-memory broadcast), and the only cross-lane work left is the sum
// of the dB and dC terms over the warp's 32 channels (a transpose through shared memory, below).
//
// The recurrences along a chunk are split at run boundaries. A run maps a state linearly:
// h_out = D_w h_in + E_w (forward) and c_out = D_w c_in + G_w (adjoint, reverse time), with
// D_w = exp(A sum of the run's dt) and E_w, G_w the run's results from 0. So, per state:
//   phase F: every run computes E_w from h = 0; one thread per (state, channel) then chains the 8
//            runs from the state entering the chunk (stored by the forward);
//   phase R: every run computes G_w from 0; one thread per (state, channel) chains the runs right to
//            left from the adjoint carry at the chunk's end;
//   phase M: every run replays its 8 steps from its true start state (h_t, a_t in registers), runs
//            the adjoint from its true carry and accumulates every gradient term.
// Chunks are chained by a look-back: the block of chunk k publishes the adjoint carry out of its
// first step, D_chunk c_end + G_chunk, into the workspace, and the block of chunk k - 1 waits for
// it, each thread for its own (state, channel) pairs (below, at take_ticket). Blocks take their
// chunk from a ticket counter in the order they start (right to left), so a block only ever waits
// for a block that started before it: no deadlock, whatever the scheduling order, and no extra pass
// over L. The launcher resets the carries and the counter before each call.
#include <cuda_runtime.h>

#include "selective_scan_runs_lanes.cuh"

namespace rbk::cuda::ss_detail {
namespace {

constexpr int kRun = 8;                                           // steps per thread
constexpr int kRunWarps = static_cast<int>(kSsChunk) / kRun;      // 8: one chunk per block
constexpr int kRunThreads = 32 * kRunWarps;                       // 256
// 2 blocks per SM (128 registers each): while one block waits (loads at its start and end, the
// look-back, barriers) the other computes. Measured with 1 block of 16 warps per SM (kSsChunk 128):
// about a third of the warp stall samples were those waits (Nsight Compute, notes/baseline_kernels.md).
constexpr int kRunMinBlocks = 2;
constexpr int kStatesPerThread = (kNS + kRunWarps - 1) / kRunWarps;  // in the combine steps
static_assert(kSsChunk % kRun == 0 && kRun % 4 == 0, "runs are whole float4s of a chunk");
// dB/dC transpose (per warp): lane l stores its 2 kRun terms as row l (stride kRedRow; rows 16..31
// shifted by kRedShift), then lane l sums column l / 2 over rows 16 (l % 2) .. 16 (l % 2) + 15.
// Row stride 20 = 5 float4: the 8 lanes of each float4 store phase hit 8 distinct 16-byte bank
// groups (5 l mod 8); the column reads hit bank (l / 2 + 16 (l % 2) + 20 s) mod 32, all distinct.
constexpr int kRedRow = 2 * kRun + 4;
constexpr int kRedShift = 16;
constexpr int kRedFloats = 32 * kRedRow + kRedShift;
static_assert(2 * kRun == 16, "the column read gives 2 lanes to each of the 16 terms");

enum StashArray { kStashU, kStashUsg, kStashSg, kStashDz, kStashArrays };
struct RunsSmem {
  alignas(16) float B[kNS][kSsChunk];  // B and C of the chunk (0 past L and for n >= N)
  alignas(16) float C[kNS][kSsChunk];
  float A[kNS][kLanes];            // A of (state, channel), natural scale
  float h[kNS][kRunWarps][kLanes];  // F: run end state from 0; then the state entering the run; M: dA terms
  float g[kNS][kRunWarps][kLanes];  // R: run adjoint from 0; then the carry into the run's last step
  float dtsum[kRunWarps][kLanes];   // sum of the run's dt; at the end the runs' dD terms
  float dbias[kRunWarps][kLanes];   // the runs' ddelta_bias terms
  // Per-step factors of the outputs, kept from the start so the end neither reloads nor recomputes:
  // u, u sg and sg (sg = d dt / d delta), and dz's factor dout sigmoid(z) (1 + z (1 - sigmoid(z))).
  float stash[kStashArrays][kRunWarps][kRun][kLanes];
  alignas(16) float red[kRunWarps][kRedFloats];
  unsigned ticket;
};

// The look-back protocol (file comment). take_ticket: the block's position in start order (every
// thread gets it). The carry of one (batch, channel, chunk, state) is one 32-bit word of the
// workspace, set to kCarryEmpty by the launcher, so the value is its own flag: a 32-bit store is
// single-copy atomic, and a consumer needs nothing else its producer wrote. So a thread waits for,
// and publishes, only its own (state, channel) pairs: no fence, no block barrier. (The first design
// had one flag per block behind a fence and two barriers; the slots measured 3.6 % faster for
// fwd + bwd at the target point, notes/baseline_kernels.md v5.) kCarryEmpty is a NaN bit pattern
// (sign and all payload bits set) that float arithmetic does not produce (the GPU's NaN results are
// 0x7fffffff); a carry with that pattern is stored as 0x7fffffff, the same NaN to every reader.
__device__ __forceinline__ int64_t take_ticket(unsigned* counter, unsigned& slot) {
  if (threadIdx.x == 0) slot = atomicAdd(counter, 1u);
  __syncthreads();
  return slot;
}
constexpr unsigned kCarryEmpty = 0xffffffffu;
// A waiting thread gives up after ~2^24 polls (seconds) and traps: a bug shows as a launch error, not a hang.
constexpr unsigned kSpinLimit = 1u << 24;
__device__ __forceinline__ unsigned probe_carry(const float* slot) {
  unsigned v;
  asm volatile("ld.relaxed.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(slot) : "memory");
  return v;
}
// The carry in slot, given an earlier probe of it (kCarryEmpty: none, or not published yet).
__device__ __forceinline__ float wait_carry(const float* slot, unsigned probed) {
  for (unsigned polls = 0; probed == kCarryEmpty; probed = probe_carry(slot)) {
    __nanosleep(64);
    if (++polls > kSpinLimit) __trap();
  }
  return __uint_as_float(probed);
}
__device__ __forceinline__ void put_carry(float* slot, float x) {
  const unsigned v = __float_as_uint(x);
  asm volatile("st.relaxed.gpu.global.u32 [%0], %1;" ::"l"(slot), "r"(v == kCarryEmpty ? 0x7fffffffu : v) : "memory");
}

// The chunk's A (state, channel) and B, C (state, step) into shared memory; zeros past Dm, L and N.
__device__ __forceinline__ void load_chunk_abc(RunsSmem& s, const SelectiveScanParams& p, int64_t b, int64_t c0,
                                               int64_t t0) {
  const int N = static_cast<int>(p.dstate);
  for (int i = threadIdx.x; i < kNS * kLanes; i += kRunThreads) {
    const int n = i / kLanes, c = i % kLanes;
    s.A[n][c] = n < N && c0 + c < p.dim ? p.A[(c0 + c) * N + n] : 0.f;
  }
  constexpr int kQuads = static_cast<int>(kSsChunk) / 4;
  const bool vec = p.len % 4 == 0 && t0 + kSsChunk <= p.len &&
                   (reinterpret_cast<uintptr_t>(p.B) | reinterpret_cast<uintptr_t>(p.C)) % 16 == 0;
  if (vec) {  // a whole chunk of 16-byte-aligned rows: float4 loads
    for (int i = threadIdx.x; i < kNS * kQuads; i += kRunThreads) {
      const int n = i / kQuads, q = i % kQuads;
      const int64_t off = (b * N + n) * p.len + t0 + 4 * q;
      const float4 zero = make_float4(0.f, 0.f, 0.f, 0.f);
      *reinterpret_cast<float4*>(&s.B[n][4 * q]) = n < N ? *reinterpret_cast<const float4*>(p.B + off) : zero;
      *reinterpret_cast<float4*>(&s.C[n][4 * q]) = n < N ? *reinterpret_cast<const float4*>(p.C + off) : zero;
    }
    return;
  }
  for (int i = threadIdx.x; i < kNS * static_cast<int>(kSsChunk); i += kRunThreads) {
    const int n = i / static_cast<int>(kSsChunk), tt = i % static_cast<int>(kSsChunk);
    const bool ok = n < N && t0 + tt < p.len;
    const int64_t off = (b * N + n) * p.len + t0 + tt;
    s.B[n][tt] = ok ? p.B[off] : 0.f;
    s.C[n][tt] = ok ? p.C[off] : 0.f;
  }
}

// Thread (warp w, lane) of the chunk combine steps handles states n = w + q kRunWarps.
__device__ __forceinline__ int combine_state(int w, int q) { return w + q * kRunWarps; }

template <bool HAS_Z>
__global__ void __launch_bounds__(kRunThreads, kRunMinBlocks) selective_scan_bwd_runs_kernel(SelectiveScanParams p) {
  extern __shared__ float4 smem_raw[];
  RunsSmem& s = *reinterpret_cast<RunsSmem*>(smem_raw);
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  const int N = static_cast<int>(p.dstate);
  const int64_t L = p.len, nck = selective_scan_num_chunks(L), nblk = selective_scan_num_channel_blocks(p.dim);
  const ChunkWorkspace ws = chunk_workspace(p);
  const int64_t per_chunk = p.batch * nblk, ticket = take_ticket(ws.ticket, s.ticket);
  const int64_t k = nck - 1 - ticket / per_chunk, b = (ticket % per_chunk) / nblk, blk = ticket % nblk;  // right to left
  const int64_t c0 = blk * kLanes, d = c0 + lane, t0 = k * kSsChunk, tr = t0 + kRun * w;
  const bool dvalid = d < p.dim;
  const int64_t bdk = (b * p.dim + d) * nck + k;
  const int64_t row = (b * p.dim + (dvalid ? d : 0)) * L;  // (batch, channel) row of the (Bt, Dm, L) arrays

  // ---- the run's per-step values in registers ----
  const bool vec = (L % 4 == 0) && ((reinterpret_cast<uintptr_t>(p.u) | reinterpret_cast<uintptr_t>(p.delta) |
                                     reinterpret_cast<uintptr_t>(p.dout) | reinterpret_cast<uintptr_t>(p.z) |
                                     reinterpret_cast<uintptr_t>(p.du) | reinterpret_cast<uintptr_t>(p.ddelta) |
                                     reinterpret_cast<uintptr_t>(p.dz)) % 16 == 0);
  const float bias = p.delta_bias && dvalid ? p.delta_bias[d] : 0.f;
  const float Dv = p.D && dvalid ? p.D[d] : 0.f;
  // The chunk's start states for the combine step's states (issued now, used after phase F).
  float h_chunk[kStatesPerThread];
#pragma unroll
  for (int q = 0; q < kStatesPerThread; ++q) {
    const int n = combine_state(w, q);
    h_chunk[q] = dvalid && n < N ? p.chunk_states[bdk * N + n] : 0.f;
  }
  float dt[kRun], dtu[kRun], gy[kRun], dD = 0.f;
  {
    float uu[kRun], dl[kRun], go[kRun], zz[kRun];
    load_run(p.u + row, tr, L, vec, uu);
    load_run(p.delta + row, tr, L, vec, dl);
    load_run(p.dout + row, tr, L, vec, go);
    if (HAS_Z) load_run(p.z + row, tr, L, vec, zz);
    // A, B, C of the chunk after the run's loads are issued: one global round trip before the
    // element functions instead of two (fwd + bwd -1.5 % at the target point, notes v5).
    load_chunk_abc(s, p, b, c0, t0);
    // dt = softplus(delta + bias) (or delta + bias) and sg = d dt / d delta from one expf; padding
    // steps (t >= L) and channels past Dm get dt = 0, i.e. a = 1 and no input: the identity.
    float sgv[kRun];
#pragma unroll
    for (int i = 0; i < kRun; ++i) {
      const float x = dl[i] + bias;
      if (p.delta_softplus) {
        softplus_sigmoid_f(x, dt[i], sgv[i]);
      } else {
        dt[i] = x;
        sgv[i] = 1.f;
      }
      if (!(dvalid && tr + i < L)) dt[i] = 0.f;
    }
#pragma unroll
    for (int i = 0; i < kRun; ++i) {
      dtu[i] = dt[i] * uu[i];
      const float sz = HAS_Z ? sigmoid_f(zz[i]) : 1.f;
      gy[i] = !dvalid ? 0.f : HAS_Z ? go[i] * zz[i] * sz : go[i];
      if (tr + i < L) dD += gy[i] * uu[i];
      const float sg = sgv[i];
      s.stash[kStashU][w][i][lane] = uu[i];
      s.stash[kStashUsg][w][i][lane] = uu[i] * sg;
      s.stash[kStashSg][w][i][lane] = sg;
      if (HAS_Z) s.stash[kStashDz][w][i][lane] = go[i] * sz * (1.f + zz[i] * (1.f - sz));
    }
  }
  {
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < kRun; ++i) sum += dt[i];
    s.dtsum[w][lane] = sum;
  }
  __syncthreads();

  // ---- phase F: each run's end state from h = 0 ----
#pragma unroll 1
  for (int n = 0; n < N; ++n) {
    const float Al = s.A[n][lane] * kLog2e;
    float Bv[kRun];
    load_run4(&s.B[n][kRun * w], Bv);
    float h = 0.f;
#pragma unroll
    for (int i = 0; i < kRun; ++i) h = ex2_ftz(dt[i] * Al) * h + dtu[i] * Bv[i];
    s.h[n][w][lane] = h;
  }
  __syncthreads();
  // ---- chunk combine, forward: thread (warp w, lane) chains states n = w + q kRunWarps from the
  // chunk's start state (loaded at the kernel's start) -> the state entering each run. No barrier
  // before phase R: these latency-bound chains overlap the other warps' phase R. ----
  // Each run's decay over its 8 steps, per combine state (the adjoint combine below reuses them).
  // The chains read all their operands before the first store: a shared-memory store between
  // loads keeps the compiler from issuing the later loads early (as in the forward's step loop);
  // fwd + bwd measured 3.2 % faster than chains that load, store and load again (notes v5).
  float run_decay[kStatesPerThread][kRunWarps];
  {
    float dts[kRunWarps];
#pragma unroll
    for (int r = 0; r < kRunWarps; ++r) dts[r] = s.dtsum[r][lane];
#pragma unroll
    for (int q = 0; q < kStatesPerThread; ++q) {
      const int n = combine_state(w, q);
      const float Al = n < N ? s.A[n][lane] * kLog2e : 0.f;
#pragma unroll
      for (int r = 0; r < kRunWarps; ++r) run_decay[q][r] = ex2_ftz(dts[r] * Al);
    }
  }
#pragma unroll
  for (int q = 0; q < kStatesPerThread; ++q) {
    const int n = combine_state(w, q);
    if (n >= N) continue;
    float e[kRunWarps], h = h_chunk[q];
#pragma unroll
    for (int r = 0; r < kRunWarps; ++r) e[r] = s.h[n][r][lane];
#pragma unroll
    for (int r = 0; r < kRunWarps; ++r) {
      s.h[n][r][lane] = h;
      h = run_decay[q][r] * h + e[r];
    }
  }
  // The carries from the chunk to the right, probed once now: the load's latency overlaps phase R,
  // and the block of that chunk, which started before this one, has often published them by then
  // (measured: fwd + bwd 2.8 % faster than polling only after phase R; notes/baseline_kernels.md v5).
  unsigned c_probe[kStatesPerThread];
#pragma unroll
  for (int q = 0; q < kStatesPerThread; ++q) {
    const int n = combine_state(w, q);
    c_probe[q] = n < N && dvalid && k + 1 < nck ? probe_carry(ws.carry + (bdk + 1) * N + n) : kCarryEmpty;
  }
  // ---- phase R: each run's adjoint carry out of its first step, from 0 at its last: carry <-
  // a_t (carry + C_t gy_t) in reverse time (see bwd_chunk). Recomputing a_t here, with the forward
  // combine between the two loops, measured faster than sharing a_t with phase F in one loop
  // followed by both combine chains (notes/baseline_kernels.md, v4 table). ----
#pragma unroll 1
  for (int n = 0; n < N; ++n) {
    const float Al = s.A[n][lane] * kLog2e;
    float Cv[kRun];
    load_run4(&s.C[n][kRun * w], Cv);
    float c = 0.f;
#pragma unroll
    for (int i = kRun - 1; i >= 0; --i) c = ex2_ftz(dt[i] * Al) * (c + Cv[i] * gy[i]);
    s.g[n][w][lane] = c;
  }
  __syncthreads();
  // ---- chunk combine, adjoint, with the look-back: the chunk's own map of the carry is
  // c_out = D_chunk c_end + G_chunk (G_chunk from 0); the block of the chunk to the right gives c_end. ----
  {
    float c_end[kStatesPerThread], g_chunk[kStatesPerThread], gl[kStatesPerThread][kRunWarps], dt_chunk = 0.f;
#pragma unroll
    for (int r = 0; r < kRunWarps; ++r) dt_chunk += s.dtsum[r][lane];
#pragma unroll
    for (int q = 0; q < kStatesPerThread; ++q) {
      const int n = combine_state(w, q);
      g_chunk[q] = c_end[q] = 0.f;
      if (n >= N) continue;
#pragma unroll
      for (int r = 0; r < kRunWarps; ++r) gl[q][r] = s.g[n][r][lane];
#pragma unroll
      for (int r = kRunWarps - 1; r >= 0; --r) g_chunk[q] = run_decay[q][r] * g_chunk[q] + gl[q][r];
    }
#pragma unroll
    for (int q = 0; q < kStatesPerThread; ++q) {
      const int n = combine_state(w, q);
      if (n >= N || !dvalid) continue;
      if (k + 1 < nck) c_end[q] = wait_carry(ws.carry + (bdk + 1) * N + n, c_probe[q]);
      if (k > 0) put_carry(ws.carry + bdk * N + n, ex2_ftz(dt_chunk * s.A[n][lane] * kLog2e) * c_end[q] + g_chunk[q]);
    }
    // The carry into each run's last step.
#pragma unroll
    for (int q = 0; q < kStatesPerThread; ++q) {
      const int n = combine_state(w, q);
      if (n >= N) continue;
      float c = c_end[q];
#pragma unroll
      for (int r = kRunWarps - 1; r >= 0; --r) {
        s.g[n][r][lane] = c;
        c = run_decay[q][r] * c + gl[q][r];
      }
    }
  }
  __syncthreads();

  // ---- phase M: replay and adjoint of the run per state, every gradient term ----
  float sgB[kRun], sAgah[kRun], ys[kRun];  // sums over states: g B, A g a h_{t-1}, C h
#pragma unroll
  for (int i = 0; i < kRun; ++i) sgB[i] = sAgah[i] = ys[i] = 0.f;
  float* red = s.red[w];
  const int red_row = lane * kRedRow + (lane >= 16 ? kRedShift : 0);
  const int red_col = (lane & 1) * (16 * kRedRow + kRedShift) + (lane >> 1);
  // The lane's dB/dC partial: term lane / 2 (which 0: dC, 1: dB; step i), written by the even lane.
  const int term = lane >> 1, which = term / kRun, term_step = term % kRun;
  const bool store_term = (lane & 1) == 0 && tr + term_step < L;
  float* part = p.workspace + ((b * nblk + blk) * 2 + which) * N * L + tr + term_step;
#pragma unroll 1
  for (int n = 0; n < N; ++n) {
    const float An = s.A[n][lane], Al = An * kLog2e;
    float Bv[kRun], Cv[kRun], hv[kRun], av[kRun];
    load_run4(&s.B[n][kRun * w], Bv);
    load_run4(&s.C[n][kRun * w], Cv);
    const float h_in = s.h[n][w][lane];
    {
      float h = h_in;
#pragma unroll
      for (int i = 0; i < kRun; ++i) {
        av[i] = ex2_ftz(dt[i] * Al);
        h = av[i] * h + dtu[i] * Bv[i];
        hv[i] = h;
        if (HAS_Z) ys[i] += Cv[i] * h;
      }
    }
    float c = s.g[n][w][lane], dA = 0.f, vc[kRun], vb[kRun];
#pragma unroll
    for (int i = kRun - 1; i >= 0; --i) {
      const float g = c + Cv[i] * gy[i];           // adjoint of h_t
      const float ah = av[i] * (i > 0 ? hv[i - 1] : h_in);  // a_t h_{t-1}
      const float gah = g * ah;
      sgB[i] += g * Bv[i];
      sAgah[i] += An * gah;
      dA += dt[i] * gah;
      vc[i] = gy[i] * hv[i];  // dC term
      vb[i] = g * dtu[i];     // dB term
      c = av[i] * g;
    }
    s.h[n][w][lane] = dA;  // the state entering the run is not needed any more
    // dB, dC of the run: sum over the warp's 32 channels through shared memory.
#pragma unroll
    for (int q = 0; q < kRun / 4; ++q) {
      *reinterpret_cast<float4*>(red + red_row + 4 * q) = make_float4(vc[4 * q], vc[4 * q + 1], vc[4 * q + 2], vc[4 * q + 3]);
      *reinterpret_cast<float4*>(red + red_row + kRun + 4 * q) =
          make_float4(vb[4 * q], vb[4 * q + 1], vb[4 * q + 2], vb[4 * q + 3]);
    }
    __syncwarp();
    float sum0 = 0.f, sum1 = 0.f;  // two chains: half the dependent-add latency
#pragma unroll
    for (int r = 0; r < 16; r += 2) {
      sum0 += red[red_col + r * kRedRow];
      sum1 += red[red_col + (r + 1) * kRedRow];
    }
    float sum = sum0 + sum1;
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    if (store_term) part[n * L] = sum;
    __syncwarp();  // the next state's stores overwrite red
  }

  // ---- outputs of the run: du, ddelta, dz; dD and ddelta_bias terms ----
  {
    float o_du[kRun], o_dd[kRun], o_dz[kRun], dbias = 0.f;
#pragma unroll
    for (int i = 0; i < kRun; ++i) {
      o_du[i] = gy[i] * Dv + dt[i] * sgB[i];
      o_dd[i] = sgB[i] * s.stash[kStashUsg][w][i][lane] + sAgah[i] * s.stash[kStashSg][w][i][lane];
      if (HAS_Z) o_dz[i] = s.stash[kStashDz][w][i][lane] * (ys[i] + Dv * s.stash[kStashU][w][i][lane]);
      if (tr + i < L) dbias += o_dd[i];
    }
    if (dvalid) {
      store_run(p.du + row, tr, L, vec, o_du);
      store_run(p.ddelta + row, tr, L, vec, o_dd);
      if (HAS_Z) store_run(p.dz + row, tr, L, vec, o_dz);
    }
    s.dtsum[w][lane] = dD;  // the combine steps' readers passed the __syncthreads above
    s.dbias[w][lane] = dbias;
  }
  __syncthreads();
  // Chunk partials per channel, summed over the runs in order (deterministic): dA (threads of states
  // n = w + q kRunWarps), dD and ddelta_bias (warp 0).
  if (dvalid) {
    for (int n = w; n < N; n += kRunWarps) {
      float a = 0.f;
#pragma unroll
      for (int r = 0; r < kRunWarps; ++r) a += s.h[n][r][lane];
      ws.dA[bdk * N + n] = a;
    }
  }
  if (dvalid && w == 0) {
    float dD = 0.f, dbias = 0.f;
#pragma unroll
    for (int r = 0; r < kRunWarps; ++r) {
      dD += s.dtsum[r][lane];
      dbias += s.dbias[r][lane];
    }
    ws.dD[bdk] = dD;
    ws.dbias[bdk] = dbias;
  }
}

}  // namespace

cudaError_t launch_selective_scan_bwd_runs(const SelectiveScanParams& p, cudaStream_t stream) {
  auto* kernel = p.z ? selective_scan_bwd_runs_kernel<true> : selective_scan_bwd_runs_kernel<false>;
  constexpr int kSmem = static_cast<int>(sizeof(RunsSmem));
  // Above the 48 KB default: opt in (cheap to repeat).
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (e != cudaSuccess) return e;
  const int64_t blocks =
      p.batch * selective_scan_num_channel_blocks(p.dim) * selective_scan_num_chunks(p.len);
  const ChunkWorkspace ws = chunk_workspace(p);
  // Every carry slot to kCarryEmpty (bytes 0xff), then the ticket counter to 0.
  const int64_t carries = p.batch * p.dim * selective_scan_num_chunks(p.len) * p.dstate;
  static_assert(kCarryEmpty == 0xffffffffu, "the memset writes 0xff bytes");
  e = cudaMemsetAsync(ws.carry, 0xff, carries * sizeof(float), stream);
  if (e != cudaSuccess) return e;
  e = cudaMemsetAsync(ws.ticket, 0, sizeof(unsigned), stream);
  if (e != cudaSuccess) return e;
  kernel<<<static_cast<unsigned>(blocks), kRunThreads, kSmem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace rbk::cuda::ss_detail
