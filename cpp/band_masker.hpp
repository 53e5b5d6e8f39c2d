// Spectral band masking of image batches: one r2c per image plane, one pruned c2r per band.
//
// Pure C++ (no Python): the bindings hand in raw pointers that stay valid for the call.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace freqxfr {

enum class MaskMode { kDelete, kKeep, kCumulativeDelete, kCumulativeKeep };
enum class OutputLayout { kNCHW, kNHWC };  // per masked image; the batch is always (N, K, ...)

struct MaskRequest {
    // Input batch (N, H, W, C), C-contiguous, uint8 or float32.
    const void* images = nullptr;
    bool images_are_uint8 = true;
    int n = 0, h = 0, w = 0, c = 0;

    // Band label of every half-spectrum coefficient, (H, W/2+1) int32; -1 = in no band.
    // The caller guarantees that a coefficient and its conjugate share a label.
    const std::int32_t* labels = nullptr;
    int bands = 0;  // K

    MaskMode mode = MaskMode::kDelete;
    // Cumulative modes: the band order (a permutation of 0..K-1); step j holds bands order[0..j].
    std::vector<std::int32_t> order;

    // Normalisation fused into the output: out = (p - mean[c]) / std[c], channels in output order.
    // normalised_domain: the masking acts on (x - mean)/std instead of x, so a deleted DC band
    // leaves the mean grey rather than black.
    bool normalised_domain = false;
    bool clip = false;
    float clip_lo = 0.0F, clip_hi = 255.0F;  // applied to p before normalising
    float mean[3] = {0.0F, 0.0F, 0.0F};
    float stddev[3] = {1.0F, 1.0F, 1.0F};
    bool reverse_channels = false;  // RGB input -> BGR output
    OutputLayout layout = OutputLayout::kNCHW;

    float* out = nullptr;  // N*K*C*H*W float32, layout as above
    int threads = 1;
    unsigned planner_flags = 0;  // FFTW planner flags (FFTW_MEASURE by default)
};

// Runs the request. Thread-safe: concurrent calls share only the plan cache, which is locked
// while planning. Throws std::invalid_argument on inconsistent requests.
void mask_bands(const MaskRequest& req);

// The floor for the benchmark: seconds to run one full FFTW 2-D c2r over `planes` planes of
// h x w with `threads` threads, using the same planner flags and thread team as mask_bands.
double c2r_floor_seconds(int h, int w, int planes, int threads, unsigned planner_flags);

// Wisdom, so that one-shot processes don't pay for planning each time.
std::string export_wisdom();
bool import_wisdom(const std::string& wisdom);

}  // namespace freqxfr
