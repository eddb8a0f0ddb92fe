// shared._box_ops: CPU kernels and registration of the torch.ops.shared_box_ops custom ops.
//
//   pairwise_similarity(boxes1 [N,4] f32, boxes2 [M,4] f32, kind, params) -> [N,M] f32
//       one fused pass per row, no temporaries, rows in parallel (at::parallel_for).
//   batched_nms(boxes [N,4] f32, scores [N] f32, idxs [N] i64, kind, threshold, params) -> kept i64
//       greedy per-class NMS; classes in parallel; each kept box suppresses the later boxes of its class
//       with one vectorised pass. Memory O(N).
//   cpu_targets() -> str[];  set_cpu_target(name) -> str
//       the instruction-set targets of the CPU row loops this CPU supports, and forcing one of them
//       (tests and benchmarks compare every target; "" restores the automatic choice).
// The CUDA implementations live in box_ops_cuda.cu (compiled when WITH_CUDA is defined).
#include <Python.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/StringUtil.h>
#include <torch/library.h>

#include <atomic>
#include <string>
#include <vector>

// Without FP-trap semantics GCC if-converts the min/max/divide chains, so the per-kind loops below
// vectorise (values are unchanged: no reassociation, no contraction is enabled by this).
#pragma GCC optimize("no-math-errno", "no-trapping-math")
#include "box_similarity.h"

namespace shared_box_ops {

void check_boxes(const at::Tensor& boxes, const char* name) {
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, name, ": expected shape [N, 4], got ", boxes.sizes());
  TORCH_CHECK(boxes.scalar_type() == at::kFloat, name, ": expected float32, got ", boxes.scalar_type());
}

void check_kind(int64_t kind) {
  TORCH_CHECK(kind >= 0 && kind < kNumKinds, "unknown similarity kind id ", kind);
}

// Structure-of-arrays copy of the boxes (optionally in a given order), so the inner loops vectorise.
struct BoxArrays {
  std::vector<float> x1, y1, x2, y2, cx, cy, w, h, area, angle;

  BoxArrays(const float* xyxy, int64_t n, const int64_t* order = nullptr)
      : x1(n), y1(n), x2(n), y2(n), cx(n), cy(n), w(n), h(n), area(n), angle(n) {
    for (int64_t i = 0; i < n; ++i) {
      const float* b = xyxy + 4 * (order ? order[i] : i);
      const Box box = make_box(b[0], b[1], b[2], b[3]);
      x1[i] = box.x1; y1[i] = box.y1; x2[i] = box.x2; y2[i] = box.y2;
      cx[i] = box.cx; cy[i] = box.cy; w[i] = box.w; h[i] = box.h;
      area[i] = box.area; angle[i] = box.angle;
    }
  }

  struct View {
    const float *x1, *y1, *x2, *y2, *cx, *cy, *w, *h, *area, *angle;
  };

  View view() const {
    return View{x1.data(), y1.data(), x2.data(), y2.data(), cx.data(), cy.data(),
                w.data(), h.data(), area.data(), angle.data()};
  }
};

// ---------------------------------------------------------------------------------------------------
// Inner loops: one instantiation per kind, compiled once per CPU target (an instruction-set feature list,
// never a CPU model: arch=<model> copies also change tuning and inlining rules) and picked at run time:
//   "default"  x86-64 baseline (SSE2), every x86-64 CPU;
//   "avx2"     AVX2 without FMA;
//   "avx2+fma" AVX2 with FMA, for NWD, DotD and SimD only (exp/sqrt polynomials). The IoU family keeps its
//              AVX2 code there: contracting a*b+c would change IoU rounding and break the exact parity with
//              torchvision / detectron2.
// The automatic choice is the last one the CPU supports; set_cpu_target (tests and benchmarks) forces one.
// ---------------------------------------------------------------------------------------------------
#if defined(__x86_64__) && defined(__GNUC__)
#define BOX_X86_TARGETS 1
#define BOX_TARGET_AVX2 __attribute__((target("avx2")))
#define BOX_TARGET_AVX2_FMA __attribute__((target("avx2,fma")))
#else
#define BOX_X86_TARGETS 0
#endif

enum Target : int { kTargetDefault = 0, kTargetAVX2 = 1, kTargetAVX2FMA = 2, kNumTargets = 3 };
constexpr const char* kTargetNames[kNumTargets] = {"default", "avx2", "avx2+fma"};

// Box j of a View, spelled out (a member function was not inlined into the AVX2 copies).
#define BOX_AT(v, j) \
  Box { (v).x1[j], (v).y1[j], (v).x2[j], (v).y2[j], (v).cx[j], (v).cy[j], (v).w[j], (v).h[j], (v).area[j], (v).angle[j] }

// (always_inline: the loops must be compiled inside each target's function to use its instruction set)
template <int KIND>
__attribute__((always_inline)) inline void fill_row(const Box a, const BoxArrays::View b, int64_t m, const Params p, float* out) {
  for (int64_t j = 0; j < m; ++j) out[j] = pair_similarity<KIND>(a, BOX_AT(b, j), p);
}

// suppressed[j] |= sim(a, b[j]) > threshold, for j in [begin, end)
template <int KIND>
__attribute__((always_inline)) inline void suppress_row(const Box a, const BoxArrays::View b, int64_t begin, int64_t end, const Params p,
                  float threshold, uint8_t* suppressed) {
  for (int64_t j = begin; j < end; ++j) suppressed[j] |= static_cast<uint8_t>(pair_similarity<KIND>(a, BOX_AT(b, j), p) > threshold);
}

#define DEFINE_TARGET_LOOPS(KIND, NAME, ATTRIBUTES)                                                      \
  ATTRIBUTES void fill_row_##KIND##_##NAME(const Box a, const BoxArrays::View b, int64_t m,             \
                                           const Params p, float* out) {                                 \
    fill_row<KIND>(a, b, m, p, out);                                                                     \
  }                                                                                                      \
  ATTRIBUTES void suppress_row_##KIND##_##NAME(const Box a, const BoxArrays::View b, int64_t begin,     \
                                               int64_t end, const Params p, float threshold,             \
                                               uint8_t* suppressed) {                                    \
    suppress_row<KIND>(a, b, begin, end, p, threshold, suppressed);                                      \
  }

using FillRow = void (*)(const Box, const BoxArrays::View, int64_t, const Params, float*);
using SuppressRow = void (*)(const Box, const BoxArrays::View, int64_t, int64_t, const Params, float, uint8_t*);

struct RowLoops {
  FillRow fill;
  SuppressRow suppress;
};

#if BOX_X86_TARGETS
#define DEFINE_KIND(KIND)            \
  DEFINE_TARGET_LOOPS(KIND, default, ) \
  DEFINE_TARGET_LOOPS(KIND, avx2, BOX_TARGET_AVX2)
#define DEFINE_FMA_KIND(KIND) DEFINE_KIND(KIND) DEFINE_TARGET_LOOPS(KIND, avx2_fma, BOX_TARGET_AVX2_FMA)
// exact kinds pass FMA_NAME avx2: their avx2+fma entry is the AVX2 code
#define KIND_LOOPS(KIND, FMA_NAME)                                       \
  {                                                                      \
    {fill_row_##KIND##_default, suppress_row_##KIND##_default},          \
    {fill_row_##KIND##_avx2, suppress_row_##KIND##_avx2},                \
    {fill_row_##KIND##_##FMA_NAME, suppress_row_##KIND##_##FMA_NAME}     \
  }
#else
#define DEFINE_KIND(KIND) DEFINE_TARGET_LOOPS(KIND, default, )
#define DEFINE_FMA_KIND(KIND) DEFINE_KIND(KIND)
#define KIND_LOOPS(KIND, FMA_NAME)                                       \
  {                                                                      \
    {fill_row_##KIND##_default, suppress_row_##KIND##_default},          \
    {fill_row_##KIND##_default, suppress_row_##KIND##_default},          \
    {fill_row_##KIND##_default, suppress_row_##KIND##_default}           \
  }
#endif

DEFINE_KIND(kIoU)
DEFINE_KIND(kGIoU)
DEFINE_KIND(kDIoU)
DEFINE_KIND(kCIoU)
DEFINE_FMA_KIND(kNWD)
DEFINE_FMA_KIND(kDotD)
DEFINE_FMA_KIND(kSimD)

// kLoops[kind][target]
const RowLoops kLoops[kNumKinds][kNumTargets] = {
    KIND_LOOPS(kIoU, avx2),       KIND_LOOPS(kGIoU, avx2), KIND_LOOPS(kDIoU, avx2),
    KIND_LOOPS(kCIoU, avx2),      KIND_LOOPS(kNWD, avx2_fma), KIND_LOOPS(kDotD, avx2_fma),
    KIND_LOOPS(kSimD, avx2_fma)};

// Targets this CPU can run, in increasing order ("default" always).
std::vector<int> supported_targets() {
  std::vector<int> targets{kTargetDefault};
#if BOX_X86_TARGETS
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) {
    targets.push_back(kTargetAVX2);
    if (__builtin_cpu_supports("fma")) targets.push_back(kTargetAVX2FMA);
  }
#endif
  return targets;
}

const std::vector<int>& cpu_targets_cached() {
  static const std::vector<int> targets = supported_targets();
  return targets;
}

std::atomic<int> g_forced_target{-1};  // -1: the best supported target

const RowLoops& row_loops(int64_t kind) {
  const int forced = g_forced_target.load(std::memory_order_relaxed);
  return kLoops[kind][forced >= 0 ? forced : cpu_targets_cached().back()];
}

// Op cpu_targets(): names of the targets this CPU supports, in increasing order.
std::vector<std::string> cpu_targets() {
  std::vector<std::string> names;
  for (const int t : cpu_targets_cached()) names.emplace_back(kTargetNames[t]);
  return names;
}

// Op set_cpu_target(name): force a target ("" = automatic); returns the name now in effect. For tests and
// benchmarks; process-wide.
std::string set_cpu_target(const std::string& name) {
  const std::vector<int>& supported = cpu_targets_cached();
  if (name.empty()) {
    g_forced_target.store(-1);
    return kTargetNames[supported.back()];
  }
  for (const int t : supported) {
    if (name == kTargetNames[t]) {
      g_forced_target.store(t);
      return name;
    }
  }
  std::string known;
  for (int t = 0; t < kNumTargets; ++t) known += std::string(t ? ", " : "") + kTargetNames[t];
  TORCH_CHECK(false, "CPU target '", name, "' is unknown or not supported by this CPU (targets: ", known,
              "; supported here: ", c10::Join(", ", cpu_targets()), ")");
}

// ---------------------------------------------------------------------------------------------------
at::Tensor pairwise_similarity_cpu(const at::Tensor& boxes1, const at::Tensor& boxes2, int64_t kind,
                                   c10::ArrayRef<double> params) {
  check_boxes(boxes1, "boxes1");
  check_boxes(boxes2, "boxes2");
  check_kind(kind);
  const at::Tensor a = boxes1.contiguous(), b = boxes2.contiguous();
  const int64_t n = a.size(0), m = b.size(0);
  at::Tensor out = at::empty({n, m}, a.options());
  if (n == 0 || m == 0) return out;
  const Params p = params_from(params);
  const BoxArrays columns(b.data_ptr<float>(), m);
  const BoxArrays::View view = columns.view();
  const float* rows = a.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const FillRow fill = row_loops(kind).fill;
  // grain: enough rows for ~64k pairs per task
  const int64_t grain = std::max<int64_t>(1, (1 << 16) / m);
  at::parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* r = rows + 4 * i;
      fill(make_box(r[0], r[1], r[2], r[3]), view, m, p, dst + i * m);
    }
  });
  return out;
}

at::Tensor batched_nms_cpu(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                           int64_t kind, double threshold, c10::ArrayRef<double> params) {
  check_boxes(boxes, "boxes");
  check_kind(kind);
  const int64_t n = boxes.size(0);
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == n, "scores: expected shape [", n, "]");
  TORCH_CHECK(idxs.dim() == 1 && idxs.size(0) == n, "idxs: expected shape [", n, "]");
  TORCH_CHECK(idxs.scalar_type() == at::kLong, "idxs: expected int64");
  if (n == 0) return at::empty({0}, idxs.options());

  // score order (stable: ties keep the lower index first), then grouped by class keeping score order
  const at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  const at::Tensor perm = std::get<1>(idxs.index_select(0, order).sort(/*stable=*/true, 0, false));
  const at::Tensor grouped = order.index_select(0, perm).contiguous();
  const at::Tensor grouped_class = idxs.index_select(0, grouped).contiguous();
  const int64_t* grouped_ptr = grouped.data_ptr<int64_t>();
  const int64_t* class_ptr = grouped_class.data_ptr<int64_t>();

  const at::Tensor box_data = boxes.contiguous();
  const BoxArrays sorted(box_data.data_ptr<float>(), n, grouped_ptr);
  const BoxArrays::View view = sorted.view();

  std::vector<int64_t> starts;  // class segments [starts[k], starts[k+1])
  for (int64_t i = 0; i < n; ++i)
    if (i == 0 || class_ptr[i] != class_ptr[i - 1]) starts.push_back(i);
  starts.push_back(n);

  std::vector<uint8_t> suppressed(n, 0);
  at::Tensor keep = at::zeros({n}, idxs.options().dtype(at::kBool));  // indexed by original box index
  bool* keep_ptr = keep.data_ptr<bool>();
  const Params p = params_from(params);
  const float thr = float_threshold(threshold);
  const SuppressRow suppress = row_loops(kind).suppress;
  const int64_t segments = static_cast<int64_t>(starts.size()) - 1;
  at::parallel_for(0, segments, 1, [&](int64_t s_begin, int64_t s_end) {
    for (int64_t s = s_begin; s < s_end; ++s) {
      const int64_t end = starts[s + 1];
      for (int64_t i = starts[s]; i < end; ++i) {
        if (suppressed[i]) continue;
        keep_ptr[grouped_ptr[i]] = true;
        suppress(BOX_AT(view, i), view, i + 1, end, p, thr, suppressed.data());
      }
    }
  });
  // kept indices in score order
  return order.masked_select(keep.index_select(0, order));
}

}  // namespace shared_box_ops

TORCH_LIBRARY(shared_box_ops, m) {
  m.def("pairwise_similarity(Tensor boxes1, Tensor boxes2, int kind, float[] params) -> Tensor");
  m.def("batched_nms(Tensor boxes, Tensor scores, Tensor idxs, int kind, float threshold, float[] params) -> Tensor");
  m.def("cpu_targets() -> str[]", &shared_box_ops::cpu_targets);
  m.def("set_cpu_target(str name) -> str", &shared_box_ops::set_cpu_target);
}

TORCH_LIBRARY_IMPL(shared_box_ops, CPU, m) {
  m.impl("pairwise_similarity", &shared_box_ops::pairwise_similarity_cpu);
  m.impl("batched_nms", &shared_box_ops::batched_nms_cpu);
}

// A plain Python module (no pybind11, to keep the build short): importing it registers the ops above.
static PyModuleDef box_ops_module = {PyModuleDef_HEAD_INIT, "_box_ops",
                                     "Compiled box ops; see torch.ops.shared_box_ops.", -1, nullptr};

PyMODINIT_FUNC PyInit__box_ops(void) {
  PyObject* module = PyModule_Create(&box_ops_module);
  if (module == nullptr) return nullptr;
#ifdef WITH_CUDA
  PyModule_AddIntConstant(module, "WITH_CUDA", 1);
#else
  PyModule_AddIntConstant(module, "WITH_CUDA", 0);
#endif
  return module;
}
