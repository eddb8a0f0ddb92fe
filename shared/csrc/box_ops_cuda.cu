// shared._box_ops: CUDA kernels of torch.ops.shared_box_ops (registered for the CUDA dispatch key).
//
//   pairwise_similarity: one thread per (row, column) pair, grid-stride loop.
//   batched_nms: the standard GPU NMS design. Boxes are sorted by score; block (r, c) of 64×64 boxes
//   writes, for each row box i of block r, a 64-bit mask of the boxes j > i of column block c that i
//   suppresses (same class and similarity > threshold). The greedy sweep over the N × ceil(N/64) mask
//   then runs on the host. Memory: N²/8 bytes for the mask.
// Only c10/cuda headers (not ATen/cuda/CUDAContext.h, which pulls in cuSPARSE/cuBLAS headers that a
// minimal CUDA toolkit does not ship).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <vector>

#include "box_similarity.h"

namespace shared_box_ops {
namespace {

constexpr int kThreadsPerBlock = 64;  // = bits of the NMS mask word
constexpr int kPairwiseThreads = 256;

template <int KIND>
__global__ void pairwise_kernel(const float* __restrict__ a, const float* __restrict__ b, int64_t n, int64_t m,
                                Params p, float* __restrict__ out) {
  const int64_t total = n * m;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < total;
       k += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t i = k / m, j = k - i * m;
    const Box box_a = make_box(a[4 * i], a[4 * i + 1], a[4 * i + 2], a[4 * i + 3]);
    const Box box_b = make_box(b[4 * j], b[4 * j + 1], b[4 * j + 2], b[4 * j + 3]);
    out[k] = pair_similarity<KIND>(box_a, box_b, p);
  }
}

template <int KIND>
__global__ void nms_mask_kernel(const float* __restrict__ boxes, const int64_t* __restrict__ classes, int64_t n,
                                Params p, float threshold, unsigned long long* __restrict__ mask) {
  const int64_t row_block = blockIdx.y, col_block = blockIdx.x;
  if (row_block > col_block) return;  // only boxes j > i matter
  const int64_t col_blocks = (n + kThreadsPerBlock - 1) / kThreadsPerBlock;
  const int row_size = static_cast<int>(min(n - row_block * kThreadsPerBlock, (int64_t)kThreadsPerBlock));
  const int col_size = static_cast<int>(min(n - col_block * kThreadsPerBlock, (int64_t)kThreadsPerBlock));

  __shared__ float col_boxes[kThreadsPerBlock * 4];
  __shared__ int64_t col_classes[kThreadsPerBlock];
  if (threadIdx.x < col_size) {
    const int64_t j = col_block * kThreadsPerBlock + threadIdx.x;
    for (int c = 0; c < 4; ++c) col_boxes[threadIdx.x * 4 + c] = boxes[j * 4 + c];
    col_classes[threadIdx.x] = classes[j];
  }
  __syncthreads();
  if (threadIdx.x >= row_size) return;

  const int64_t i = row_block * kThreadsPerBlock + threadIdx.x;
  const Box box_i = make_box(boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]);
  const int64_t class_i = classes[i];
  unsigned long long bits = 0;
  const int start = (row_block == col_block) ? threadIdx.x + 1 : 0;
  for (int t = start; t < col_size; ++t) {
    if (col_classes[t] != class_i) continue;
    const float* c = col_boxes + 4 * t;
    if (pair_similarity<KIND>(box_i, make_box(c[0], c[1], c[2], c[3]), p) > threshold) bits |= 1ULL << t;
  }
  mask[i * col_blocks + col_block] = bits;
}

template <template <int> class Launcher, typename... Args>
void dispatch_kind(int64_t kind, Args&&... args) {
  switch (kind) {
    case kIoU: Launcher<kIoU>::run(args...); break;
    case kGIoU: Launcher<kGIoU>::run(args...); break;
    case kDIoU: Launcher<kDIoU>::run(args...); break;
    case kCIoU: Launcher<kCIoU>::run(args...); break;
    case kNWD: Launcher<kNWD>::run(args...); break;
    case kDotD: Launcher<kDotD>::run(args...); break;
    case kSimD: Launcher<kSimD>::run(args...); break;
    default: TORCH_CHECK(false, "unknown similarity kind id ", kind);
  }
}

template <int KIND>
struct PairwiseLauncher {
  static void run(const at::Tensor& a, const at::Tensor& b, const Params& p, at::Tensor& out) {
    const int64_t total = a.size(0) * b.size(0);
    const int64_t blocks = std::min<int64_t>((total + kPairwiseThreads - 1) / kPairwiseThreads, 65535 * 8);
    pairwise_kernel<KIND><<<blocks, kPairwiseThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        a.data_ptr<float>(), b.data_ptr<float>(), a.size(0), b.size(0), p, out.data_ptr<float>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

template <int KIND>
struct NmsMaskLauncher {
  static void run(const at::Tensor& boxes, const at::Tensor& classes, const Params& p, float threshold,
                  at::Tensor& mask) {
    const int64_t n = boxes.size(0);
    const int64_t col_blocks = (n + kThreadsPerBlock - 1) / kThreadsPerBlock;
    const dim3 grid(col_blocks, col_blocks);
    nms_mask_kernel<KIND><<<grid, kThreadsPerBlock, 0, c10::cuda::getCurrentCUDAStream()>>>(
        boxes.data_ptr<float>(), classes.data_ptr<int64_t>(), n, p, threshold,
        reinterpret_cast<unsigned long long*>(mask.data_ptr<int64_t>()));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

at::Tensor pairwise_similarity_cuda(const at::Tensor& boxes1, const at::Tensor& boxes2, int64_t kind,
                                    c10::ArrayRef<double> params) {
  TORCH_CHECK(boxes1.dim() == 2 && boxes1.size(1) == 4 && boxes2.dim() == 2 && boxes2.size(1) == 4,
              "expected boxes of shape [N, 4]");
  TORCH_CHECK(boxes1.scalar_type() == at::kFloat && boxes2.scalar_type() == at::kFloat, "expected float32 boxes");
  const c10::cuda::CUDAGuard guard(boxes1.device());
  const at::Tensor a = boxes1.contiguous(), b = boxes2.contiguous();
  at::Tensor out = at::empty({a.size(0), b.size(0)}, a.options());
  if (out.numel() == 0) return out;
  dispatch_kind<PairwiseLauncher>(kind, a, b, params_from(params), out);
  return out;
}

at::Tensor batched_nms_cuda(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                            int64_t kind, double threshold, c10::ArrayRef<double> params) {
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4 && boxes.scalar_type() == at::kFloat,
              "boxes: expected float32 [N, 4]");
  const int64_t n = boxes.size(0);
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == n && idxs.dim() == 1 && idxs.size(0) == n,
              "scores and idxs: expected shape [N]");
  TORCH_CHECK(idxs.scalar_type() == at::kLong, "idxs: expected int64");
  if (n == 0) return at::empty({0}, idxs.options());
  const c10::cuda::CUDAGuard guard(boxes.device());

  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor sorted_boxes = boxes.index_select(0, order).contiguous();
  const at::Tensor sorted_classes = idxs.index_select(0, order).contiguous();
  const int64_t col_blocks = (n + kThreadsPerBlock - 1) / kThreadsPerBlock;
  at::Tensor mask = at::zeros({n * col_blocks}, boxes.options().dtype(at::kLong));
  dispatch_kind<NmsMaskLauncher>(kind, sorted_boxes, sorted_classes, params_from(params),
                                 float_threshold(threshold), mask);

  const at::Tensor mask_host = mask.to(at::kCPU);
  const unsigned long long* mask_ptr = reinterpret_cast<const unsigned long long*>(mask_host.data_ptr<int64_t>());
  std::vector<unsigned long long> removed(col_blocks, 0ULL);
  at::Tensor keep = at::empty({n}, idxs.options().device(at::kCPU));
  int64_t* keep_ptr = keep.data_ptr<int64_t>();
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t block = i / kThreadsPerBlock, bit = i % kThreadsPerBlock;
    if (removed[block] & (1ULL << bit)) continue;
    keep_ptr[kept++] = i;
    const unsigned long long* row = mask_ptr + i * col_blocks;
    for (int64_t j = block; j < col_blocks; ++j) removed[j] |= row[j];
  }
  return order.index_select(0, keep.narrow(0, 0, kept).to(order.device(), /*non_blocking=*/false));
}

}  // namespace

TORCH_LIBRARY_IMPL(shared_box_ops, CUDA, m) {
  m.impl("pairwise_similarity", &pairwise_similarity_cuda);
  m.impl("batched_nms", &batched_nms_cuda);
}

}  // namespace shared_box_ops
