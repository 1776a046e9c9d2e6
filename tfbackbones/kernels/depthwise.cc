// The filter gradient of a depthwise 2-D convolution (NHWC, float32, one filter per
// channel), for CPU training of mobile networks.
//
// Why: on this project's CPU, TensorFlow's oneDNN `DepthwiseConv2dNativeBackpropFilter`
// is the single most expensive kernel of a MobileNetV3-Small training step: 24 ms per
// step at 96 px, batch 64, 3.4 times the forward convolutions it differentiates (6.9 ms),
// and up to 8x slower than the forward on the late layers with few pixels and many channels
// (3x3x576 with 5x5 filters: 3.9 ms against 0.5 ms; `python -m experiments.benchmark
// --what=depthwise --backbone=mobilenet_v3_small --image_size=96`). `experiments/BENCHMARKS.md` has the
// per-layer table. Its FLOPs are exactly those of the forward, so nothing but the
// implementation stands in the way.
//
// Math (as TensorFlow's op; depth multiplier 1, dilation 1):
//   dW[i, j, c, 0] = sum over b, oh, ow of
//                    dy[b, oh, ow, c] * x[b, oh * sh + i - pad_top, ow * sw + j - pad_left, c]
// with out-of-image taps contributing 0. pad_top / pad_left follow TensorFlow's SAME /
// VALID rule (SAME: total = max((out - 1) * stride + k - in, 0), top = total / 2).
//
// oneDNN is fast for 3x3 filters and slow from 5x5 up (its 3x3 path is specialised): at
// batch 64 on 2 cores, 129x129x64 3x3 stride 2 takes it 15 ms and this kernel 24, while
// 32x32x120 5x5 takes it 30 ms and this kernel 6 (`python -m experiments.benchmark
// --what=depthwise --backbone=mobilenet_v3_large --image_size=256`). Over MobileNetV3-Large's
// 3x3 layers oneDNN is faster in total, so `tfbackbones.kernels.fuse_depthwise` uses this
// kernel only for filters larger than 3x3.
//
// How: channels are contiguous in NHWC, so the innermost loops run over channels
// (vectorised by the compiler) and accumulate into a k_h x k_w x C buffer that stays in
// cache. The batch is split into one part per thread of TensorFlow's intra-op pool, each
// with its own buffer, summed at the end. Summation order differs from TensorFlow's, so
// results agree to float32 rounding, not bit for bit.

#define EIGEN_USE_THREADS

#include <algorithm>
#include <string>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/threadpool.h"

namespace tfbackbones {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Status;
using tensorflow::Tensor;
using tensorflow::TensorShape;
namespace errors = tensorflow::errors;
namespace shape_inference = tensorflow::shape_inference;

REGISTER_OP("TfbDepthwiseConv2dBackpropFilter")
    .Input("x: float")
    .Input("dy: float")
    .Output("dw: float")
    .Attr("kernel_size: list(int)")
    .Attr("strides: list(int)")
    .Attr("padding: {'SAME', 'VALID'}")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      std::vector<int> k;
      TF_RETURN_IF_ERROR(c->GetAttr("kernel_size", &k));
      if (k.size() != 2) return errors::InvalidArgument("kernel_size must have 2 values");
      shape_inference::ShapeHandle x;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 4, &x));
      c->set_output(0, c->MakeShape({k[0], k[1], c->Dim(x, 3), 1}));
      return Status();
    });

namespace {

// Eight floats as one value (GCC/Clang vector extension: one AVX register, or two SSE).
typedef float V8 __attribute__((vector_size(32)));
inline V8 Load(const float* p) {
  V8 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

// TensorFlow's windowed output size and leading pad for one spatial axis.
void Window(int64_t in, int64_t k, int64_t stride, bool same, int64_t* out,
            int64_t* pad_before) {
  if (same) {
    *out = (in + stride - 1) / stride;
    const int64_t total = std::max<int64_t>((*out - 1) * stride + k - in, 0);
    *pad_before = total / 2;
  } else {
    *out = (in - k + stride) / stride;
    *pad_before = 0;
  }
}

// The shapes of one call: input H x W x C, output OH x OW, filter KH x KW, strides SH, SW,
// leading pads PT (top), PL (left).
struct Geometry {
  int64_t H, W, C, OH, OW, KH, KW, SH, SW, PT, PL;
};

// Accumulates the filter gradient of images [b0, b1) into acc (k_h * k_w * C), pixel by
// pixel: for few output columns and many channels (the late layers), where the channel
// loop is long and the k_h x k_w x C buffer stays in cache.
void AccumulateByPixel(const float* x, const float* dy, float* acc, int64_t b0, int64_t b1,
                       const Geometry& q) {
  const int64_t H = q.H, W = q.W, C = q.C, OH = q.OH, OW = q.OW, KH = q.KH, KW = q.KW;
  for (int64_t b = b0; b < b1; ++b) {
    const float* xb = x + b * H * W * C;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t ih0 = oh * q.SH - q.PT;
      const int64_t i_lo = std::max<int64_t>(0, -ih0);
      const int64_t i_hi = std::min<int64_t>(KH, H - ih0);
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t iw0 = ow * q.SW - q.PL;
        const int64_t j_lo = std::max<int64_t>(0, -iw0);
        const int64_t j_hi = std::min<int64_t>(KW, W - iw0);
        const float* __restrict__ g = dy + ((b * OH + oh) * OW + ow) * C;
        for (int64_t i = i_lo; i < i_hi; ++i) {
          const float* xrow = xb + ((ih0 + i) * W + iw0) * C;
          for (int64_t j = j_lo; j < j_hi; ++j) {
            const float* __restrict__ xp = xrow + j * C;
            float* __restrict__ a = acc + (i * KW + j) * C;
            for (int64_t c = 0; c < C; ++c) a[c] += g[c] * xp[c];
          }
        }
      }
    }
  }
}

// The same sum, tap by tap with the output columns innermost and 8 channels held in
// registers: for wide outputs (the early layers), where per-pixel loops over few channels
// would be all overhead.
void AccumulateByTap(const float* x, const float* dy, float* acc, int64_t b0, int64_t b1,
                     const Geometry& q) {
  const int64_t H = q.H, W = q.W, C = q.C, OH = q.OH, OW = q.OW, KH = q.KH, KW = q.KW;
  const int64_t C8 = C - C % 8;
  const int64_t xs = q.SW * C;  // x step between output columns
  // Per filter column j, the output columns whose tap lands inside the image:
  // 0 <= ow * SW + j - PL < W. They depend on j alone, so they are found once.
  std::vector<int64_t> ow_lo(KW, 0), ow_hi(KW, OW);
  for (int64_t j = 0; j < KW; ++j) {
    while (ow_lo[j] < OW && ow_lo[j] * q.SW + j - q.PL < 0) ++ow_lo[j];
    while (ow_hi[j] > ow_lo[j] && (ow_hi[j] - 1) * q.SW + j - q.PL >= W) --ow_hi[j];
  }
  for (int64_t b = b0; b < b1; ++b) {
    const float* xb = x + b * H * W * C;
    const float* gb = dy + b * OH * OW * C;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t ih0 = oh * q.SH - q.PT;
      const int64_t i_lo = std::max<int64_t>(0, -ih0);
      const int64_t i_hi = std::min<int64_t>(KH, H - ih0);
      const float* grow = gb + oh * OW * C;
      for (int64_t i = i_lo; i < i_hi; ++i) {
        const float* xrow = xb + (ih0 + i) * W * C;
        for (int64_t j = 0; j < KW; ++j) {
          const int64_t lo = ow_lo[j], hi = ow_hi[j];
          float* a = acc + (i * KW + j) * C;
          for (int64_t c0 = 0; c0 < C8; c0 += 8) {
            // Four independent sums: one chain would wait on each multiply-add's latency.
            V8 r0 = {}, r1 = {}, r2 = {}, r3 = {};
            const float* g = grow + lo * C + c0;
            const float* xp = xrow + (lo * q.SW + j - q.PL) * C + c0;
            int64_t ow = lo;
            for (; ow + 4 <= hi; ow += 4, g += 4 * C, xp += 4 * xs) {
              r0 += Load(g) * Load(xp);
              r1 += Load(g + C) * Load(xp + xs);
              r2 += Load(g + 2 * C) * Load(xp + 2 * xs);
              r3 += Load(g + 3 * C) * Load(xp + 3 * xs);
            }
            for (; ow < hi; ++ow, g += C, xp += xs) r0 += Load(g) * Load(xp);
            const V8 sum = (r0 + r1) + (r2 + r3) + Load(a + c0);
            __builtin_memcpy(a + c0, &sum, sizeof(sum));
          }
          for (int64_t c = C8; c < C; ++c) {
            float r = a[c];
            for (int64_t ow = lo; ow < hi; ++ow)
              r += grow[ow * C + c] * xrow[(ow * q.SW + j - q.PL) * C + c];
            a[c] = r;
          }
        }
      }
    }
  }
}

}  // namespace

class DepthwiseBackpropFilterOp : public OpKernel {
 public:
  explicit DepthwiseBackpropFilterOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    std::vector<int> k, s;
    std::string padding;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("kernel_size", &k));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("strides", &s));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("padding", &padding));
    OP_REQUIRES(ctx, k.size() == 2 && k[0] > 0 && k[1] > 0,
                errors::InvalidArgument("kernel_size must be 2 positive values"));
    OP_REQUIRES(ctx, s.size() == 2 && s[0] > 0 && s[1] > 0,
                errors::InvalidArgument("strides must be 2 positive values (h, w)"));
    kh_ = k[0];
    kw_ = k[1];
    sh_ = s[0];
    sw_ = s[1];
    same_ = padding == "SAME";
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    const Tensor& dy_t = ctx->input(1);
    OP_REQUIRES(ctx, x_t.dims() == 4 && dy_t.dims() == 4,
                errors::InvalidArgument("x and dy must be NHWC (rank 4): ",
                                        x_t.shape().DebugString(), ", ",
                                        dy_t.shape().DebugString()));
    const int64_t B = x_t.dim_size(0), H = x_t.dim_size(1), W = x_t.dim_size(2),
                  C = x_t.dim_size(3);
    Geometry q{H, W, C, 0, 0, kh_, kw_, sh_, sw_, 0, 0};
    Window(H, kh_, sh_, same_, &q.OH, &q.PT);
    Window(W, kw_, sw_, same_, &q.OW, &q.PL);
    const int64_t OH = q.OH, OW = q.OW;
    OP_REQUIRES(ctx, dy_t.dim_size(0) == B && dy_t.dim_size(1) == OH &&
                         dy_t.dim_size(2) == OW && dy_t.dim_size(3) == C,
                errors::InvalidArgument("dy shape ", dy_t.shape().DebugString(),
                                        " does not match the convolution of x ",
                                        x_t.shape().DebugString()));
    Tensor* dw_t = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({kh_, kw_, C, 1}), &dw_t));
    float* dw = dw_t->flat<float>().data();
    const int64_t n = kh_ * kw_ * C;
    std::fill(dw, dw + n, 0.0f);
    if (B == 0 || OH <= 0 || OW <= 0 || C == 0) return;
    const float* x = x_t.flat<float>().data();
    const float* dy = dy_t.flat<float>().data();

    auto* pool = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    // One part of the batch per thread, but only when each part has enough work to pay
    // for its buffer and the final sum (about 64K multiply-adds).
    const int64_t per_image = OH * OW * kh_ * kw_ * C;
    int64_t parts = std::min<int64_t>(B, pool->NumThreads());
    parts = std::max<int64_t>(1, std::min<int64_t>(parts, B * per_image / 65536));
    const auto accumulate = OW >= 8 ? AccumulateByTap : AccumulateByPixel;
    const auto run = [&](float* acc, int64_t b0, int64_t b1) {
      accumulate(x, dy, acc, b0, b1, q);
    };
    if (parts == 1) {
      run(dw, 0, B);
      return;
    }
    std::vector<float> partial((parts - 1) * n, 0.0f);
    pool->ParallelFor(parts, /*cost_per_unit=*/1 << 30, [&](int64_t first, int64_t last) {
      for (int64_t p = first; p < last; ++p) {
        run(p == 0 ? dw : partial.data() + (p - 1) * n, B * p / parts, B * (p + 1) / parts);
      }
    });
    for (int64_t p = 1; p < parts; ++p) {
      const float* __restrict__ src = partial.data() + (p - 1) * n;
      for (int64_t i = 0; i < n; ++i) dw[i] += src[i];
    }
  }

 private:
  int64_t kh_, kw_, sh_, sw_;
  bool same_;
};

REGISTER_KERNEL_BUILDER(Name("TfbDepthwiseConv2dBackpropFilter").Device(DEVICE_CPU),
                        DepthwiseBackpropFilterOp);

}  // namespace tfbackbones
