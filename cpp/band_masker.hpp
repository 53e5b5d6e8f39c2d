// Spectral band masking of image batches: one r2c per image plane, one pruned c2r per band, and
// optionally each band image weighted by R spatial windows (region cells).
//
// Pure C++ (no Python): the bindings hand in raw pointers that stay valid for the call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace freqxfr {

enum class MaskMode { kDelete, kKeep, kCumulativeDelete, kCumulativeKeep };
enum class OutputLayout { kNCHW, kNHWC };  // per masked image; the batch is always (N, K, ...)

// The settings of one call: everything but the buffers. Bound to Python as
// freqxfr._core.MaskOptions, so the bindings pass one object instead of a long argument list.
struct MaskOptions {
    int bands = 0;  // K
    MaskMode mode = MaskMode::kDelete;
    // Cumulative modes: the order of the K bands, or of the K*R cells when regions are given
    // (cell index k*R + r); step j holds the first j+1 entries.
    std::vector<std::int32_t> order;

    // Normalisation fused into the output: out = (p - mean[c]) / std[c], channels in output order.
    // normalised_domain: the masking acts on (x - mean)/std instead of x, so a deleted DC band
    // leaves the mean grey rather than black.
    bool normalised_domain = false;
    bool clip = false;
    float clip_lo = 0.0F, clip_hi = 255.0F;  // applied to p before normalising
    // One value per channel (C of them): the core checks the sizes before it reads them.
    std::vector<float> mean;
    std::vector<float> stddev;
    bool reverse_channels = false;  // RGB input -> BGR output
    OutputLayout layout = OutputLayout::kNCHW;
    int threads = 1;
    unsigned planner_flags = 0;  // FFTW planner flags (FFTW_MEASURE by default)
};

struct MaskRequest {
    // Input batch (N, H, W, C), C-contiguous, uint8 or float32 (aligned to its element size).
    const void* images = nullptr;
    bool images_are_uint8 = true;
    int n = 0, h = 0, w = 0, c = 0;

    // Band label of every half-spectrum coefficient, (H, W/2+1) int32; -1 = in no band.
    // The caller guarantees that a coefficient and its conjugate share a label.
    const std::int32_t* labels = nullptr;

    // Optional spatial weights (R, H, W) float32: cell (k, r) deletes (or keeps) w_r * band_k.
    // regions == 0: band-only masking, K images per input. Otherwise K*R images per input, in
    // band-major order (cell k*R + r); each band image is computed once and written R times.
    const float* weights = nullptr;
    int regions = 0;

    MaskOptions options;

    // N * K * C * H * W float32 (K*R instead of K with regions), layout as in options, aligned
    // to 4 bytes.
    float* out = nullptr;
};

// Runs the request. Thread-safe: concurrent calls share only the plan cache. A call looks up
// (and if need be makes) every plan it needs once, under the cache's lock, before its workers
// start; the workers then use only their own copies of the plan handles. Plans are never
// destroyed. Throws std::invalid_argument on an inconsistent request (checked before anything
// is written: sizes, channel count, per-channel values, alignment, band labels, cell order).
void mask_bands(const MaskRequest& req);

// The floor for the benchmark: seconds to run one full FFTW 2-D c2r over `planes` planes of
// h x w with `threads` threads, using the same planner flags and thread team as mask_bands.
double c2r_floor_seconds(int h, int w, int planes, int threads, unsigned planner_flags);

// Wisdom, so that one-shot processes don't pay for planning each time.
std::string export_wisdom();
bool import_wisdom(const std::string& wisdom);

}  // namespace freqxfr
