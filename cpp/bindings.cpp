// pybind11 bindings: argument unpacking only. Validation with good messages happens in Python
// (freqxfr.masking); the core checks everything it needs to stay in bounds itself (channel count,
// per-channel values, alignment, labels), so nothing here writes into fixed-size storage.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
#include <stdexcept>

#include "band_masker.hpp"
#include "fftw_api.hpp"

namespace py = pybind11;
using freqxfr::MaskMode;
using freqxfr::MaskRequest;
using freqxfr::OutputLayout;

namespace {

template <typename T>
const T* checked_data(const py::array& a, const char* name) {
    if (!(a.flags() & py::array::c_style) || !py::isinstance<py::array_t<T>>(a)) {
        throw std::invalid_argument(std::string(name) + " must be a C-contiguous array of the right dtype");
    }
    return static_cast<const T*>(a.data());
}

// An array dimension as the core's int, refusing what would wrap around.
int dim(const py::array& a, py::ssize_t axis, const char* name) {
    const py::ssize_t n = a.shape(axis);
    if (n > std::numeric_limits<int>::max()) {
        throw std::invalid_argument(std::string(name) + " is too large");
    }
    return static_cast<int>(n);
}

void mask_bands(const py::array& images, const py::array& labels, int bands, const std::string& mode,
                const std::vector<std::int32_t>& order, bool normalised_domain, bool clip,
                float clip_lo, float clip_hi, const std::vector<float>& mean,
                const std::vector<float>& stddev, bool reverse_channels, const std::string& layout,
                py::array& out, int threads, unsigned planner_flags) {
    MaskRequest req;
    if (images.ndim() != 4 || labels.ndim() != 2) {
        throw std::invalid_argument("images must be 4-D and labels 2-D");
    }
    req.images_are_uint8 = py::isinstance<py::array_t<std::uint8_t>>(images);
    req.images = req.images_are_uint8 ? static_cast<const void*>(checked_data<std::uint8_t>(images, "images"))
                                      : static_cast<const void*>(checked_data<float>(images, "images"));
    req.n = dim(images, 0, "images");
    req.h = dim(images, 1, "images");
    req.w = dim(images, 2, "images");
    req.c = dim(images, 3, "images");
    if (labels.shape(0) != req.h || labels.shape(1) != req.w / 2 + 1) {
        throw std::invalid_argument("labels must have shape (H, W // 2 + 1)");
    }
    req.labels = checked_data<std::int32_t>(labels, "labels");
    req.bands = bands;
    if (mode == "delete") req.mode = MaskMode::kDelete;
    else if (mode == "keep") req.mode = MaskMode::kKeep;
    else if (mode == "cumulative_delete") req.mode = MaskMode::kCumulativeDelete;
    else if (mode == "cumulative_keep") req.mode = MaskMode::kCumulativeKeep;
    else throw std::invalid_argument("unknown mode " + mode);
    req.order = order;
    req.normalised_domain = normalised_domain;
    req.clip = clip;
    req.clip_lo = clip_lo;
    req.clip_hi = clip_hi;
    req.mean = mean;  // sizes checked by the core
    req.stddev = stddev;
    req.reverse_channels = reverse_channels;
    req.layout = layout == "NHWC" ? OutputLayout::kNHWC : OutputLayout::kNCHW;
    const py::ssize_t expected = static_cast<py::ssize_t>(req.n) * bands * req.c * req.h * req.w;
    if (!(out.flags() & py::array::c_style) || !out.writeable() ||
        !py::isinstance<py::array_t<float>>(out) || out.size() != expected) {
        throw std::invalid_argument("out must be a writeable C-contiguous float32 array of N*K*C*H*W elements");
    }
    req.out = static_cast<float*>(out.mutable_data());
    req.threads = threads;
    req.planner_flags = planner_flags;
    // Every buffer is taken and every Python object stays referenced by this frame, so the core
    // may run without the GIL; the arrays' destructors run after the GIL is back.
    py::gil_scoped_release release;
    freqxfr::mask_bands(req);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "freqxfr's compiled spectral-masking core (private; use freqxfr.mask_bands)";
    m.def("load_fftw", [](const std::string& path) { return std::string(freqxfr::load_fftw(path).version); },
          py::arg("path"), "Load libfftw3f from path (once per process); returns FFTW's version string.");
    m.def("fftw_loaded", &freqxfr::fftw_loaded);
    m.def("fftw_library_path", &freqxfr::fftw_library_path);
    m.def("mask_bands", &mask_bands, py::arg("images"), py::arg("labels"), py::arg("bands"),
          py::arg("mode"), py::arg("order"), py::arg("normalised_domain"), py::arg("clip"),
          py::arg("clip_lo"), py::arg("clip_hi"), py::arg("mean"), py::arg("std"),
          py::arg("reverse_channels"), py::arg("layout"), py::arg("out"), py::arg("threads"),
          py::arg("planner_flags"));
    m.def("c2r_floor_seconds",
          [](int h, int w, int planes, int threads, unsigned flags) {
              py::gil_scoped_release release;  // plain ints only
              return freqxfr::c2r_floor_seconds(h, w, planes, threads, flags);
          },
          py::arg("h"), py::arg("w"), py::arg("planes"), py::arg("threads"), py::arg("planner_flags"));
    m.def("export_wisdom", &freqxfr::export_wisdom);
    m.def("import_wisdom", &freqxfr::import_wisdom, py::arg("wisdom"));
    m.attr("PLANNER_FLAGS") = py::dict(py::arg("estimate") = freqxfr::kFftwEstimate,
                                       py::arg("measure") = freqxfr::kFftwMeasure,
                                       py::arg("patient") = freqxfr::kFftwPatient,
                                       py::arg("exhaustive") = freqxfr::kFftwExhaustive);
}
