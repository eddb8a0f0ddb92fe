// Box similarities shared by the CPU (box_ops.cpp) and CUDA (box_ops_cuda.cu) kernels of shared._box_ops.
//
// The formulas are the ones of shared/boxes/similarity.py, written with the same operation order so that
// the kernels agree with the PyTorch path to float32 rounding (IoU bit-for-bit, as torchvision's NMS).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

// Every per-pair function is force-inlined: the CPU row loops (box_ops.cpp) are compiled once per instruction
// set (target attributes), and GCC does not inline an ordinary inline function into a loop whose target
// differs from the function's (e.g. arch=...), which leaves one scalar call per pair in that copy.
#if defined(__CUDACC__)
#define BOX_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define BOX_HD inline __attribute__((always_inline))
#else
#define BOX_HD inline
#endif

namespace shared_box_ops {

// Kind ids: keep in sync with KERNEL_KIND_IDS in shared/ops/_extension.py.
enum Kind : int { kIoU = 0, kGIoU = 1, kDIoU = 2, kCIoU = 3, kNWD = 4, kDotD = 5, kSimD = 6, kNumKinds = 7 };

constexpr float kTorchvisionEps = 1e-7f;   // DIoU/CIoU eps, as torchvision
constexpr float kSimdMinValue = 1e-6f;     // SimD output floor
constexpr float kMinExpArgument = -87.0f;  // keeps exp() results in the float32 normal range
constexpr float kFourOverPiSquared = 0.40528473456935109f;

// Parameters of the parametric kinds (see SimilarityKind.kernel_params in Python):
//   nwd / dotd: p0 = constant (C or S), p1 = eps;  simd: p0 = x factor (m or 1/m), p1 = y factor, p2 = eps.
struct Params {
  float p0 = 0.f, p1 = 0.f, p2 = 0.f;
};

// The largest float <= t: for a float x, `x > float_threshold(t)` is exactly `(double)x > t`, the comparison
// torchvision's NMS makes (float IoU against a double threshold), without leaving float in the inner loops.
inline float float_threshold(double t) {
  const float f = static_cast<float>(t);
  return static_cast<double>(f) <= t ? f : std::nextafter(f, -INFINITY);
}

// Params from the op's `float[] params` argument (c10::ArrayRef<double>; missing entries stay 0).
template <typename Sequence>
inline Params params_from(const Sequence& values) {
  Params p;
  if (values.size() > 0) p.p0 = static_cast<float>(values[0]);
  if (values.size() > 1) p.p1 = static_cast<float>(values[1]);
  if (values.size() > 2) p.p2 = static_cast<float>(values[2]);
  return p;
}

// One box with the derived quantities every formula needs (BoxGeometry in Python).
struct Box {
  float x1, y1, x2, y2, cx, cy, w, h, area, angle;
};

BOX_HD float box_min(float a, float b) { return a < b ? a : b; }
BOX_HD float box_max(float a, float b) { return a > b ? a : b; }

// Corners min/max'ed with the centre (no-op for valid boxes; an inverted box collapses onto its centre).
BOX_HD Box make_box(float x1, float y1, float x2, float y2) {
  Box b;
  b.cx = (x1 + x2) * 0.5f;
  b.cy = (y1 + y2) * 0.5f;
  b.w = box_max(x2 - x1, 0.f);
  b.h = box_max(y2 - y1, 0.f);
  b.x1 = box_min(x1, b.cx);
  b.y1 = box_min(y1, b.cy);
  b.x2 = box_max(x2, b.cx);
  b.y2 = box_max(y2, b.cy);
  b.area = b.w * b.h;
  b.angle = atan2f(b.w, b.h);
  return b;
}

// sqrt(x) for x >= 0. On the GPU sqrtf. On the CPU x·rsqrt(x) with three Newton steps from the classic
// bit-level initial guess (relative error a few ulp): libm's sqrtf keeps an errno branch that stops GCC
// from vectorising the loops (the extension cannot pass -fno-math-errno). x is floored at 1e-30, so
// sqrt(0) returns 1e-15: far below any box-size scale.
BOX_HD float box_sqrt(float x) {
#if defined(__CUDA_ARCH__)
  return sqrtf(x);
#else
  x = box_max(x, 1e-30f);
  int32_t bits;
  std::memcpy(&bits, &x, sizeof(bits));
  bits = 0x5f3759df - (bits >> 1);
  float y;
  std::memcpy(&y, &bits, sizeof(y));
  const float half_x = 0.5f * x;
  y = y * (1.5f - half_x * y * y);
  y = y * (1.5f - half_x * y * y);
  y = y * (1.5f - half_x * y * y);
  return x * y;
#endif
}

// exp(x) for x <= 88. On the GPU expf; on the CPU a branch-free Cody-Waite reduction + degree-6 minimax
// polynomial (relative error ~2e-7) that the compiler vectorises, unlike the libm call.
BOX_HD float box_exp(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  x = box_max(box_min(x, 88.0f), kMinExpArgument);
  const float t = x * 1.44269504088896341f;
  const float n = static_cast<float>(static_cast<int>(t + (t >= 0.f ? 0.5f : -0.5f)));
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
#endif
}

BOX_HD float pair_iou(const Box& a, const Box& b) {
  const float iw = box_max(box_min(a.x2, b.x2) - box_max(a.x1, b.x1), 0.f);
  const float ih = box_max(box_min(a.y2, b.y2) - box_max(a.y1, b.y1), 0.f);
  const float inter = iw * ih;
  const float uni = (a.area + b.area) - inter;
  return inter / box_max(uni, 1.17549435e-38f);
}

BOX_HD float pair_giou(const Box& a, const Box& b) {
  const float iw = box_max(box_min(a.x2, b.x2) - box_max(a.x1, b.x1), 0.f);
  const float ih = box_max(box_min(a.y2, b.y2) - box_max(a.y1, b.y1), 0.f);
  const float inter = iw * ih;
  const float uni = (a.area + b.area) - inter;
  const float cw = box_max(box_max(a.x2, b.x2) - box_min(a.x1, b.x1), 0.f);
  const float ch = box_max(box_max(a.y2, b.y2) - box_min(a.y1, b.y1), 0.f);
  const float enclosing = cw * ch;
  const float penalty = (enclosing - uni) / box_max(enclosing, 1.17549435e-38f);
  return inter / box_max(uni, 1.17549435e-38f) - penalty;
}

BOX_HD float pair_diou_with_iou(const Box& a, const Box& b, float iou) {
  const float cw = box_max(box_max(a.x2, b.x2) - box_min(a.x1, b.x1), 0.f);
  const float ch = box_max(box_max(a.y2, b.y2) - box_min(a.y1, b.y1), 0.f);
  const float diagonal_sq = cw * cw + ch * ch + kTorchvisionEps;
  const float dx = a.cx - b.cx, dy = a.cy - b.cy;
  return iou - (dx * dx + dy * dy) / diagonal_sq;
}

BOX_HD float pair_ciou(const Box& a, const Box& b) {
  const float iou = pair_iou(a, b);
  const float diou = pair_diou_with_iou(a, b, iou);
  const float d_angle = a.angle - b.angle;
  const float v = d_angle * d_angle * kFourOverPiSquared;
  const float alpha = v / (1.0f - iou + v + kTorchvisionEps);
  return diou - alpha * v;
}

BOX_HD float pair_nwd(const Box& a, const Box& b, const Params& p) {
  const float dw = a.w - b.w, dh = a.h - b.h, dx = a.cx - b.cx, dy = a.cy - b.cy;
  const float shape_sq = (dw * dw + dh * dh) * 0.25f;
  const float dist_sq = dx * dx + dy * dy + shape_sq + p.p1;
  return box_exp(box_max(box_sqrt(dist_sq) * (-1.0f / p.p0), kMinExpArgument));
}

BOX_HD float pair_dotd(const Box& a, const Box& b, const Params& p) {
  const float dx = a.cx - b.cx, dy = a.cy - b.cy;
  const float dist_sq = dx * dx + dy * dy + p.p1;
  return box_exp(box_max(box_sqrt(dist_sq) * (-1.0f / p.p0), kMinExpArgument));
}

BOX_HD float pair_simd(const Box& a, const Box& b, const Params& p) {
  const float scale_x = p.p0 / (a.w + b.w + 2.f * p.p2);
  const float scale_y = p.p1 / (a.h + b.h + 2.f * p.p2);
  const float lx = (a.cx - b.cx) * scale_x, ly = (a.cy - b.cy) * scale_y;
  const float sx = (a.w - b.w) * scale_x, sy = (a.h - b.h) * scale_y;
  const float distance = box_sqrt(lx * lx + ly * ly) + box_sqrt(sx * sx + sy * sy);
  return box_max(box_exp(box_max(-distance, kMinExpArgument)), kSimdMinValue);
}

template <int KIND>
BOX_HD float pair_similarity(const Box& a, const Box& b, const Params& p) {
  if constexpr (KIND == kIoU) {
    return pair_iou(a, b);
  } else if constexpr (KIND == kGIoU) {
    return pair_giou(a, b);
  } else if constexpr (KIND == kDIoU) {
    return pair_diou_with_iou(a, b, pair_iou(a, b));
  } else if constexpr (KIND == kCIoU) {
    return pair_ciou(a, b);
  } else if constexpr (KIND == kNWD) {
    return pair_nwd(a, b, p);
  } else if constexpr (KIND == kDotD) {
    return pair_dotd(a, b, p);
  } else {
    return pair_simd(a, b, p);
  }
}

}  // namespace shared_box_ops
