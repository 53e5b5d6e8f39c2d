#include "band_masker.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <utility>

#include "fftw_api.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace freqxfr {
namespace {

// Every buffer handed to FFTW is 64-byte aligned. FFTW's new-array execute functions require the
// arrays to have the alignment the plan was made with; keeping one alignment everywhere (plans
// included) also makes the chosen codelets, and so the bits of the result, independent of which
// thread or buffer computes a plane.
constexpr std::size_t kAlign = 64;

template <typename T>
struct AlignedFree {
    void operator()(T* p) const { std::free(p); }
};
template <typename T>
using AlignedPtr = std::unique_ptr<T[], AlignedFree<T>>;

template <typename T>
AlignedPtr<T> aligned_array(std::size_t count) {
    std::size_t bytes = std::max<std::size_t>(count * sizeof(T), kAlign);
    bytes = (bytes + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, bytes);
    if (p == nullptr) {
        throw std::bad_alloc();
    }
    std::memset(p, 0, bytes);
    return AlignedPtr<T>(static_cast<T*>(p));
}

// Complex elements per spectrum plane, rounded up so that consecutive planes stay 64-byte aligned.
std::size_t spectrum_stride(int h, int w) {
    const std::size_t n = static_cast<std::size_t>(h) * static_cast<std::size_t>(w / 2 + 1);
    return (n + 7) / 8 * 8;
}

// ---- plan cache ---------------------------------------------------------------------------
// FFTW's planner is not thread-safe, so all planning happens under g_plan_mutex. Plans are never
// destroyed: they live for the process and are shared by every call of the same shape.

struct ShapePlans {
    fftwf_plan r2c = nullptr;       // full 2-D forward transform of one plane
    fftwf_plan c2r_full = nullptr;  // full 2-D inverse: the benchmark's floor
    fftwf_plan c2r_rows = nullptr;  // second pass of the pruned inverse: H row transforms
    // First pass of the pruned inverse: inverse DFTs down columns [v0, v0 + count).
    std::map<std::pair<int, int>, fftwf_plan> columns;
};

std::mutex g_plan_mutex;
std::map<std::tuple<int, int, unsigned>, std::unique_ptr<ShapePlans>> g_plans;

fftwf_plan checked(fftwf_plan plan, const char* what) {
    if (plan == nullptr) {
        throw std::runtime_error(std::string("FFTW could not plan ") + what);
    }
    return plan;
}

// The plan handles one call uses, copied out of the cache under the lock. Workers read only
// this copy: the cache's maps may grow under the lock (another call, another schedule) while
// they run, so they must never look anything up there.
struct CallPlans {
    fftwf_plan r2c = nullptr;
    fftwf_plan c2r_full = nullptr;
    fftwf_plan c2r_rows = nullptr;
    std::vector<fftwf_plan> columns;  // one per requested column range, in the same order
};

// Returns the shape's plans, creating any that are missing (including the column plans that
// `ranges` needs). Must be called with g_plan_mutex held.
ShapePlans& plans_locked(int h, int w, unsigned flags,
                         const std::vector<std::pair<int, int>>& ranges) {
    const FftwApi& api = fftw();
    auto& slot = g_plans[std::make_tuple(h, w, flags)];
    if (!slot) {
        slot = std::make_unique<ShapePlans>();
    }
    ShapePlans& p = *slot;
    const int wc = w / 2 + 1;
    const std::size_t stride = spectrum_stride(h, w);
    // Planning with FFTW_MEASURE overwrites its arrays, so plan on scratch buffers.
    auto real = aligned_array<float>(static_cast<std::size_t>(h) * w);
    auto spec = aligned_array<fftwf_complex>(stride);
    if (p.r2c == nullptr) {
        p.r2c = checked(api.plan_dft_r2c_2d(h, w, real.get(), spec.get(), flags), "r2c");
    }
    if (p.c2r_full == nullptr) {
        p.c2r_full = checked(api.plan_dft_c2r_2d(h, w, spec.get(), real.get(), flags), "c2r");
    }
    if (p.c2r_rows == nullptr) {
        const FftwIoDim dim{w, 1, 1};
        const FftwIoDim rows{h, wc, w};
        p.c2r_rows = checked(api.plan_guru_dft_c2r(1, &dim, 1, &rows, spec.get(), real.get(),
                                                   flags | kFftwDestroyInput),
                             "row c2r");
    }
    for (const auto& range : ranges) {
        if (p.columns.count(range) != 0) {
            continue;
        }
        const FftwIoDim dim{h, wc, wc};
        const FftwIoDim cols{range.second, 1, 1};
        // Planned at the same column offset it runs at, so that the alignment matches.
        fftwf_complex* at = spec.get() + range.first;
        p.columns[range] = checked(
            api.plan_guru_dft(1, &dim, 1, &cols, at, at, kFftwBackward, flags), "column dft");
    }
    return p;
}

// Looks up (making if missing) every plan a call of this shape needs, once, under the lock.
CallPlans lookup_plans(int h, int w, unsigned flags,
                       const std::vector<std::pair<int, int>>& ranges) {
    std::lock_guard<std::mutex> lock(g_plan_mutex);
    const ShapePlans& p = plans_locked(h, w, flags, ranges);
    CallPlans call;
    call.r2c = p.r2c;
    call.c2r_full = p.c2r_full;
    call.c2r_rows = p.c2r_rows;
    call.columns.reserve(ranges.size());
    for (const auto& range : ranges) {
        call.columns.push_back(p.columns.at(range));
    }
    return call;
}

// ---- a team of threads for one call ---------------------------------------------------------

class Barrier {
public:
    explicit Barrier(int count) : count_(count) {}
    void wait() {
        std::unique_lock<std::mutex> lock(mutex_);
        const long gen = generation_;
        if (++arrived_ == count_) {
            arrived_ = 0;
            ++generation_;
            cv_.notify_all();
            return;
        }
        cv_.wait(lock, [&] { return gen != generation_; });
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    int count_;
    int arrived_ = 0;
    long generation_ = 0;
};

// Runs body(thread_index) on `threads` threads (the caller's included) and rethrows the first error.
void run_team(int threads, const std::function<void(int)>& body) {
    if (threads <= 1) {
        body(0);
        return;
    }
    std::exception_ptr error;
    std::mutex error_mutex;
    auto guarded = [&](int tid) {
        try {
            body(tid);
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) {
                error = std::current_exception();
            }
        }
    };
    std::vector<std::thread> team;
    team.reserve(threads - 1);
    for (int t = 1; t < threads; ++t) {
        team.emplace_back(guarded, t);
    }
    guarded(0);
    for (auto& th : team) {
        th.join();
    }
    if (error) {
        std::rethrow_exception(error);
    }
}

// Hands out item indices 0..count-1 to whichever thread asks next. Which thread computes an item
// never changes its value, so results do not depend on the thread count.
class WorkQueue {
public:
    explicit WorkQueue(int count) : count_(count) {}
    bool next(int& item) {
        item = next_.fetch_add(1, std::memory_order_relaxed);
        return item < count_;
    }

private:
    std::atomic<int> next_{0};
    int count_;
};

// ---- the masking itself ---------------------------------------------------------------------

struct BandIndex {
    std::vector<std::int32_t> coeffs;  // flat half-spectrum indices (row * wc + col)
    int v0 = 0, ncols = 0;             // the columns that hold them: [v0, v0 + ncols)
    bool has_dc = false;
    int plan = -1;                     // index into CallPlans::columns (-1: empty band)
};

std::vector<BandIndex> index_bands(const MaskRequest& req) {
    const int wc = req.w / 2 + 1;
    const int nbands = req.options.bands;
    std::vector<BandIndex> bands(nbands);
    std::vector<int> lo(nbands, wc), hi(nbands, -1);
    for (int r = 0; r < req.h; ++r) {
        for (int v = 0; v < wc; ++v) {
            const std::int32_t k = req.labels[r * wc + v];
            if (k < -1 || k >= nbands) {
                throw std::invalid_argument("band label out of range at spectrum row " +
                                            std::to_string(r) + ", column " + std::to_string(v));
            }
            if (k < 0) {
                continue;
            }
            bands[k].coeffs.push_back(r * wc + v);
            lo[k] = std::min(lo[k], v);
            hi[k] = std::max(hi[k], v);
        }
    }
    for (int k = 0; k < nbands; ++k) {
        bands[k].v0 = hi[k] < 0 ? 0 : lo[k];
        bands[k].ncols = hi[k] < 0 ? 0 : hi[k] - lo[k] + 1;
    }
    if (req.labels[0] >= 0) {
        bands[req.labels[0]].has_dc = true;
    }
    return bands;
}

// Per-thread scratch: a few planes, whatever the batch size.
struct Workspace {
    AlignedPtr<fftwf_complex> spec;  // a full spectrum (cumulative modes)
    AlignedPtr<fftwf_complex> work;  // the masked spectrum, destroyed by the inverse
    AlignedPtr<float> inverse;       // the inverse transform of one band
    AlignedPtr<float> plane;         // the input plane as float (cumulative modes)
    AlignedPtr<float> sum;           // the running sum of the selected band (or cell) images
    AlignedPtr<float> dc_weight;     // cumulative cells: the summed weight of DC-band cells
    AlignedPtr<float> band_images;   // cumulative cells: all K band images of the plane
};

// How the masked value p of one output pixel is formed; see Masker::write. With regions, the
// weight plane multiplies the band image (w * b) and, in the normalised domain, the share of DC
// removed at a pixel: masking (x - mean) instead of x adds mean * (DC weight removed) to p.
struct WriteTerms {
    const float* weight = nullptr;  // w_r per pixel, multiplies r; null: 1
    const float* dc = nullptr;      // the removed-DC weight per pixel d; null: 0
    float base = 0.0F;              // offset = base + dc_scale * d
    float dc_scale = 0.0F;
};

class Masker {
public:
    Masker(const MaskRequest& req, CallPlans plans, std::vector<BandIndex> bands)
        : req_(req), opt_(req.options), plans_(std::move(plans)), bands_(std::move(bands)),
          api_(fftw()), hw_(static_cast<std::size_t>(req.h) * req.w), regions_(req.regions),
          steps_(req.options.bands * std::max(1, req.regions)),
          stride_(spectrum_stride(req.h, req.w)), scale_(1.0F / static_cast<float>(hw_)) {
        for (int c = 0; c < req.c; ++c) {
            inv_std_[c] = 1.0F / opt_.stddev[c];
        }
    }

    Workspace workspace(bool cumulative) const {
        Workspace ws;
        ws.work = aligned_array<fftwf_complex>(stride_);
        ws.inverse = aligned_array<float>(hw_);
        if (cumulative) {
            ws.plane = aligned_array<float>(hw_);
            ws.spec = aligned_array<fftwf_complex>(stride_);
            ws.sum = aligned_array<float>(hw_);
            if (regions_ > 0) {
                ws.dc_weight = aligned_array<float>(hw_);
                ws.band_images = aligned_array<float>(hw_ * static_cast<std::size_t>(opt_.bands));
            }
        }
        return ws;
    }

    // Input plane of image n, output channel c, as float.
    void load_plane(int n, int c, float* dst) const {
        const int cin = opt_.reverse_channels ? req_.c - 1 - c : c;
        const std::size_t base = static_cast<std::size_t>(n) * hw_ * req_.c;
        if (req_.images_are_uint8) {
            const auto* src = static_cast<const std::uint8_t*>(req_.images) + base + cin;
            for (std::size_t i = 0; i < hw_; ++i) {
                dst[i] = static_cast<float>(src[i * req_.c]);
            }
        } else {
            const auto* src = static_cast<const float*>(req_.images) + base + cin;
            for (std::size_t i = 0; i < hw_; ++i) {
                dst[i] = src[i * req_.c];
            }
        }
    }

    void forward(float* plane, fftwf_complex* spectrum) const {
        api_.execute_dft_r2c(plans_.r2c, plane, spectrum);
    }

    // dst := the real image holding only band k of `spectrum`.
    void inverse_band(int k, const fftwf_complex* spectrum, Workspace& ws, float* dst) const {
        const BandIndex& band = bands_[k];
        if (band.ncols == 0) {
            std::memset(dst, 0, hw_ * sizeof(float));
            return;
        }
        std::memset(ws.work.get(), 0, stride_ * sizeof(fftwf_complex));
        fftwf_complex* work = ws.work.get();
        for (const std::int32_t i : band.coeffs) {
            work[i][0] = spectrum[i][0] * scale_;  // c2r is unnormalised
            work[i][1] = spectrum[i][1] * scale_;
        }
        // Pruned 2-D inverse: the column pass skips the columns that the band leaves empty,
        // then one c2r per row. Low rings touch few columns, so they cost less than a full c2r.
        const fftwf_plan cols = plans_.columns[band.plan];  // looked up before the workers started
        api_.execute_dft(cols, work + band.v0, work + band.v0);
        api_.execute_dft_c2r(plans_.c2r_rows, work, dst);
    }

    // out[n, step, c] := normalise(clip(p)), with p = x - w*r (subtract) or p = w*r, plus the
    // offset base + dc_scale*d (w, d per pixel from `terms`; absent: w = 1, d = 0).
    void write(int n, int step, int c, const float* x, const float* r, bool subtract,
               const WriteTerms& terms) const {
        if (terms.weight != nullptr) {
            write_impl<true>(n, step, c, x, r, subtract, terms);
        } else {
            write_impl<false>(n, step, c, x, r, subtract, terms);
        }
    }

    template <bool kWeighted>
    void write_impl(int n, int step, int c, const float* x, const float* r, bool subtract,
                    const WriteTerms& terms) const {
        const float mean = opt_.mean[c];
        const float inv_std = inv_std_[c];
        const bool clip = opt_.clip;
        const std::size_t image = static_cast<std::size_t>(n) * steps_ + step;
        float* dst;
        std::size_t dst_stride;
        if (opt_.layout == OutputLayout::kNCHW) {
            dst = req_.out + (image * req_.c + c) * hw_;
            dst_stride = 1;
        } else {
            dst = req_.out + image * hw_ * req_.c + c;
            dst_stride = static_cast<std::size_t>(req_.c);
        }
        const float* w = terms.weight;
        const float* d = terms.dc;
        // One formula for the vector and the scalar path, so that both give the same bits:
        // out = clip(sx * x + sr * (w * r) + ((base + dc_scale * d) - mean), lo - mean, hi - mean)
        //       / std.
        // With w = 1 and d = 0 or 1 every product is exact, so an all-ones region gives the bits
        // of band-only masking (where the offset is base + dc_scale, 0 or mean).
        const float sx = subtract ? 1.0F : 0.0F;
        const float sr = subtract ? -1.0F : 1.0F;
        const float shift = terms.base - mean;  // the offset's part without d
        const float lo_shifted = opt_.clip_lo - mean, hi_shifted = opt_.clip_hi - mean;
        std::size_t i = 0;
#if defined(__SSE2__)
        // The output is large and read next by the model, not by us: streaming stores skip the
        // read-for-ownership of each cache line and keep our working planes in cache.
        if (dst_stride == 1 && reinterpret_cast<std::uintptr_t>(dst) % 16 == 0) {
            const __m128 vsx = _mm_set1_ps(sx), vsr = _mm_set1_ps(sr);
            const __m128 vshift = _mm_set1_ps(shift), vscale = _mm_set1_ps(inv_std);
            const __m128 vlo = _mm_set1_ps(lo_shifted), vhi = _mm_set1_ps(hi_shifted);
            const __m128 vbase = _mm_set1_ps(terms.base), vmean = _mm_set1_ps(mean);
            const __m128 vdscale = _mm_set1_ps(terms.dc_scale);
            for (; i + 4 <= hw_; i += 4) {
                __m128 rv = _mm_loadu_ps(r + i);
                if (kWeighted) {
                    rv = _mm_mul_ps(_mm_loadu_ps(w + i), rv);
                }
                __m128 p = _mm_add_ps(_mm_mul_ps(vsx, _mm_loadu_ps(x + i)), _mm_mul_ps(vsr, rv));
                if (d != nullptr) {
                    const __m128 off = _mm_add_ps(vbase, _mm_mul_ps(vdscale, _mm_loadu_ps(d + i)));
                    p = _mm_add_ps(p, _mm_sub_ps(off, vmean));
                } else {
                    p = _mm_add_ps(p, vshift);
                }
                if (clip) {
                    p = _mm_min_ps(_mm_max_ps(p, vlo), vhi);
                }
                _mm_stream_ps(dst + i, _mm_mul_ps(p, vscale));
            }
            _mm_sfence();  // order the streaming stores before the thread hands over
        }
#endif
        for (; i < hw_; ++i) {
            const float rv = kWeighted ? w[i] * r[i] : r[i];
            float p = (sx * x[i] + sr * rv);
            p = p + (d != nullptr ? (terms.base + terms.dc_scale * d[i]) - mean : shift);
            if (clip) {
                p = std::min(std::max(p, lo_shifted), hi_shifted);
            }
            dst[i * dst_stride] = p * inv_std;
        }
    }

    // The offset terms that move a result from pixel-domain to normalised-domain masking. Masking
    // is linear, so the two differ only by the mean, which lives in the band holding DC: the
    // offset is mean * (the share of DC removed), per pixel when regions weight the DC band.
    //   delete: removed = dc_selected;  keep: removed = 1 - dc_selected.
    WriteTerms offset_terms(int c, bool keep) const {
        WriteTerms t;
        if (opt_.normalised_domain) {
            t.base = keep ? opt_.mean[c] : 0.0F;
            t.dc_scale = keep ? -opt_.mean[c] : opt_.mean[c];
        }
        return t;
    }

    // Band-only: the selected DC share is 0 or 1, so the offset is a constant.
    WriteTerms band_terms(int c, bool keep, bool dc_selected) const {
        WriteTerms t = offset_terms(c, keep);
        t.base = dc_selected ? t.base + t.dc_scale : t.base;
        t.dc_scale = 0.0F;
        return t;
    }

    const float* region_weights(int r) const {
        return req_.weights + hw_ * static_cast<std::size_t>(r);
    }

    void run_single_bands(int threads) const {
        // Images go through in chunks of `threads`: phase A transforms every plane of the chunk,
        // phase B masks every (image, band, channel). Memory stays at a few planes per thread.
        const int nbands = opt_.bands;
        const int chunk = threads;
        const int nchunks = (req_.n + chunk - 1) / chunk;
        auto spectra = aligned_array<fftwf_complex>(stride_ * chunk * req_.c);
        // The chunk's input planes as float, converted once rather than once per band.
        const std::size_t plane_stride = (hw_ + 15) / 16 * 16;
        auto inputs = aligned_array<float>(plane_stride * chunk * req_.c);
        std::vector<std::unique_ptr<WorkQueue>> queues;
        for (int i = 0; i < nchunks; ++i) {
            const int nb = std::min(chunk, req_.n - i * chunk);
            queues.push_back(std::make_unique<WorkQueue>(nb * req_.c));
            queues.push_back(std::make_unique<WorkQueue>(nb * nbands * req_.c));
        }
        Barrier barrier(threads);
        const bool keep = opt_.mode == MaskMode::kKeep;
        run_team(threads, [&](int) {
            Workspace ws = workspace(false);
            for (int ci = 0; ci < nchunks; ++ci) {
                const int first = ci * chunk;
                int item;
                while (queues[2 * ci]->next(item)) {
                    const int local = item / req_.c, c = item % req_.c;
                    float* x = inputs.get() + plane_stride * item;
                    load_plane(first + local, c, x);
                    forward(x, spectra.get() + stride_ * item);
                }
                barrier.wait();
                while (queues[2 * ci + 1]->next(item)) {
                    // One item per (image, band, channel): small items keep both threads busy
                    // to the end even for a single pair.
                    const int c = item % req_.c;
                    const int k = (item / req_.c) % nbands;
                    const int local = item / (req_.c * nbands);
                    const bool dc = bands_[k].has_dc;
                    const int plane = local * req_.c + c;
                    const float* x = inputs.get() + plane_stride * plane;
                    inverse_band(k, spectra.get() + stride_ * plane, ws, ws.inverse.get());
                    if (regions_ == 0) {
                        write(first + local, k, c, x, ws.inverse.get(), !keep,
                              band_terms(c, keep, dc));
                        continue;
                    }
                    // The band image is computed once and written once per region, its window
                    // fused into the write: cell (k, r) selects w_r * b_k.
                    for (int r = 0; r < regions_; ++r) {
                        WriteTerms t = dc ? offset_terms(c, keep) : band_terms(c, keep, false);
                        t.weight = region_weights(r);
                        if (dc && opt_.normalised_domain) {
                            t.dc = t.weight;  // the DC share selected here is w_r
                        }
                        write(first + local, k * regions_ + r, c, x, ws.inverse.get(), !keep, t);
                    }
                }
                // Phase A of the next chunk overwrites the spectra this phase reads.
                barrier.wait();
            }
        });
    }

    void run_cumulative(int threads) const {
        // One item per (image, channel): the running sum must be added in the given order, so
        // each item walks its steps sequentially.
        WorkQueue queue(req_.n * req_.c);
        const bool keep = opt_.mode == MaskMode::kCumulativeKeep;
        run_team(threads, [&](int) {
            Workspace ws = workspace(true);
            int item;
            while (queue.next(item)) {
                const int n = item / req_.c, c = item % req_.c;
                load_plane(n, c, ws.plane.get());
                forward(ws.plane.get(), ws.spec.get());  // out-of-place r2c keeps its input
                std::memset(ws.sum.get(), 0, hw_ * sizeof(float));
                if (regions_ > 0) {
                    cumulative_cells(n, c, keep, ws);
                    continue;
                }
                bool dc_in_sum = false;
                for (int step = 0; step < opt_.bands; ++step) {
                    const int k = opt_.order[step];
                    inverse_band(k, ws.spec.get(), ws, ws.inverse.get());
                    float* sum = ws.sum.get();
                    const float* inv = ws.inverse.get();
                    for (std::size_t i = 0; i < hw_; ++i) {
                        sum[i] += inv[i];
                    }
                    dc_in_sum = dc_in_sum || bands_[k].has_dc;
                    write(n, step, c, ws.plane.get(), sum, !keep, band_terms(c, keep, dc_in_sum));
                }
            }
        });
    }

    // Cumulative modes over the K*R cells of one (image, channel): every band image once, then
    // the cells in the given order, each adding w_r * b_k to the running sum.
    void cumulative_cells(int n, int c, bool keep, Workspace& ws) const {
        float* images = ws.band_images.get();
        for (int k = 0; k < opt_.bands; ++k) {
            inverse_band(k, ws.spec.get(), ws, images + hw_ * static_cast<std::size_t>(k));
        }
        float* sum = ws.sum.get();
        float* dcw = ws.dc_weight.get();
        std::memset(dcw, 0, hw_ * sizeof(float));
        WriteTerms t = offset_terms(c, keep);
        for (int step = 0; step < steps_; ++step) {
            const int cell = opt_.order[step];
            const int k = cell / regions_, r = cell % regions_;
            const float* w = region_weights(r);
            const float* b = images + hw_ * static_cast<std::size_t>(k);
            for (std::size_t i = 0; i < hw_; ++i) {
                sum[i] += w[i] * b[i];
            }
            if (bands_[k].has_dc) {
                for (std::size_t i = 0; i < hw_; ++i) {
                    dcw[i] += w[i];
                }
            }
            t.dc = opt_.normalised_domain ? dcw : nullptr;
            write(n, step, c, ws.plane.get(), sum, !keep, t);
        }
    }

private:
    const MaskRequest& req_;
    const MaskOptions& opt_;
    const CallPlans plans_;
    std::vector<BandIndex> bands_;
    const FftwApi& api_;
    std::size_t hw_;
    int regions_;  // R, or 0 for band-only masking
    int steps_;    // masked images per input: K, or K*R
    std::size_t stride_;
    float scale_;
    float inv_std_[3] = {1.0F, 1.0F, 1.0F};
};

bool aligned_to(const void* p, std::size_t alignment) {
    return reinterpret_cast<std::uintptr_t>(p) % alignment == 0;
}

void validate(const MaskRequest& req) {
    const MaskOptions& opt = req.options;
    if (req.images == nullptr || req.labels == nullptr || req.out == nullptr) {
        throw std::invalid_argument("null buffer");
    }
    if (req.n < 1 || req.h < 1 || req.w < 1 || (req.c != 1 && req.c != 3)) {
        throw std::invalid_argument(
            "images must be (N, H, W, C) with N, H, W >= 1 and C in {1, 3}");
    }
    if (req.regions < 0 || req.regions > 4096 || (req.regions > 0) != (req.weights != nullptr)) {
        throw std::invalid_argument("regions: 0 without weights, or 1..4096 weight planes");
    }
    // Misaligned float loads and stores are undefined behaviour (and slow): refuse them.
    if ((!req.images_are_uint8 && !aligned_to(req.images, alignof(float))) ||
        !aligned_to(req.labels, alignof(std::int32_t)) || !aligned_to(req.out, alignof(float)) ||
        !aligned_to(req.weights, alignof(float))) {
        throw std::invalid_argument(
            "images, labels, weights and out must be aligned to their element size");
    }
    if (opt.mean.size() != static_cast<std::size_t>(req.c) ||
        opt.stddev.size() != static_cast<std::size_t>(req.c)) {
        throw std::invalid_argument("mean and std need one value per channel");
    }
    if (req.h > 16384 || req.w > 16384) {
        throw std::invalid_argument("image side larger than 16384");
    }
    if (opt.bands < 1) {
        throw std::invalid_argument("need at least one band");
    }
    if (opt.threads < 1 || opt.threads > 1024) {
        throw std::invalid_argument("threads must be in 1..1024");
    }
    const double steps = static_cast<double>(opt.bands) * std::max(1, req.regions);
    const double total = static_cast<double>(req.n) * steps * req.c * req.h * req.w;
    if (total > static_cast<double>(std::numeric_limits<std::int64_t>::max() / 8)) {
        throw std::invalid_argument("output too large");
    }
    if (static_cast<double>(req.n) * steps * req.c > std::numeric_limits<int>::max()) {
        throw std::invalid_argument("too many (image, band, channel) planes");
    }
    for (int c = 0; c < req.c; ++c) {
        // 1/std must be finite too: a std that underflows to 0 or a subnormal in float32 is refused.
        if (!std::isfinite(opt.mean[c]) || !std::isfinite(opt.stddev[c]) ||
            !std::isfinite(1.0F / opt.stddev[c]) || opt.stddev[c] == 0.0F) {
            throw std::invalid_argument("mean and std must be finite, and 1/std finite");
        }
    }
    if (opt.mode == MaskMode::kCumulativeDelete || opt.mode == MaskMode::kCumulativeKeep) {
        const int cells = static_cast<int>(steps);
        if (static_cast<int>(opt.order.size()) != cells) {
            throw std::invalid_argument("order must list every band (or cell) once");
        }
        std::vector<bool> seen(cells, false);
        for (const std::int32_t k : opt.order) {
            if (k < 0 || k >= cells || seen[k]) {
                throw std::invalid_argument(
                    "order must be a permutation of the band (or cell) indices");
            }
            seen[k] = true;
        }
    }
}

}  // namespace

void mask_bands(const MaskRequest& req) {
    validate(req);
    const MaskOptions& opt = req.options;
    std::vector<BandIndex> bands = index_bands(req);
    std::vector<std::pair<int, int>> ranges;
    for (auto& b : bands) {
        if (b.ncols > 0) {
            b.plan = static_cast<int>(ranges.size());
            ranges.emplace_back(b.v0, b.ncols);
        }
    }
    Masker masker(req, lookup_plans(req.h, req.w, opt.planner_flags, ranges), std::move(bands));
    const bool cumulative =
        opt.mode == MaskMode::kCumulativeDelete || opt.mode == MaskMode::kCumulativeKeep;
    // More threads than work items would only add idle workers.
    const int items = cumulative ? req.n * req.c : req.n * opt.bands;
    const int threads = std::max(1, std::min(opt.threads, items));
    if (cumulative) {
        masker.run_cumulative(threads);
    } else {
        masker.run_single_bands(threads);
    }
}

double c2r_floor_seconds(int h, int w, int planes, int threads, unsigned planner_flags) {
    if (h < 1 || w < 1 || planes < 1 || threads < 1 || h > 16384 || w > 16384 || threads > 1024) {
        throw std::invalid_argument("c2r_floor_seconds: sizes in 1..16384, threads in 1..1024");
    }
    const CallPlans plans = lookup_plans(h, w, planner_flags, {});
    const FftwApi& api = fftw();
    const std::size_t stride = spectrum_stride(h, w);
    const std::size_t hw = static_cast<std::size_t>(h) * w;
    WorkQueue queue(planes);
    const auto start = std::chrono::steady_clock::now();
    run_team(threads, [&](int) {
        auto spec = aligned_array<fftwf_complex>(stride);
        auto real = aligned_array<float>(hw);
        int item;
        while (queue.next(item)) {
            // Refill the input each time, as masking does: c2r destroys it.
            std::memset(spec.get(), 0, stride * sizeof(fftwf_complex));
            spec.get()[item % static_cast<int>(stride)][0] = 1.0F;
            api.execute_dft_c2r(plans.c2r_full, spec.get(), real.get());
        }
    });
    const auto stop = std::chrono::steady_clock::now();
    return std::chrono::duration<double>(stop - start).count();
}

std::string export_wisdom() {
    std::lock_guard<std::mutex> lock(g_plan_mutex);
    char* text = fftw().export_wisdom_to_string();
    if (text == nullptr) {
        return {};
    }
    std::string result(text);
    std::free(text);  // FFTW documents that the caller frees this string with free()
    return result;
}

bool import_wisdom(const std::string& wisdom) {
    std::lock_guard<std::mutex> lock(g_plan_mutex);
    return fftw().import_wisdom_from_string(wisdom.c_str()) != 0;
}

}  // namespace freqxfr
