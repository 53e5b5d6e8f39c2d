// pybind11 bindings: argument unpacking only. Validation with good messages happens in Python
// (freqxfr.masking); the core checks everything it needs to stay in bounds itself (channel count,
// per-channel values, alignment, labels), so nothing here writes into fixed-size storage.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
#include <optional>
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
        throw std::invalid_argument(std::string(name) +
                                    " must be a C-contiguous array of the right dtype");
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

// The array arguments' buffers; the settings arrive as one bound MaskOptions.
void mask_bands(const py::array& images, const py::array& labels, py::array& out,
                const freqxfr::MaskOptions& options, const std::optional<py::array>& regions) {
    MaskRequest req;
    req.options = options;
    if (images.ndim() != 4 || labels.ndim() != 2) {
        throw std::invalid_argument("images must be 4-D and labels 2-D");
    }
    req.images_are_uint8 = py::isinstance<py::array_t<std::uint8_t>>(images);
    req.images = req.images_are_uint8
                     ? static_cast<const void*>(checked_data<std::uint8_t>(images, "images"))
                     : static_cast<const void*>(checked_data<float>(images, "images"));
    req.n = dim(images, 0, "images");
    req.h = dim(images, 1, "images");
    req.w = dim(images, 2, "images");
    req.c = dim(images, 3, "images");
    if (labels.shape(0) != req.h || labels.shape(1) != req.w / 2 + 1) {
        throw std::invalid_argument("labels must have shape (H, W // 2 + 1)");
    }
    req.labels = checked_data<std::int32_t>(labels, "labels");
    py::ssize_t cells = options.bands;
    if (regions) {
        const py::array& weights = *regions;
        if (weights.ndim() != 3 || weights.shape(1) != req.h || weights.shape(2) != req.w) {
            throw std::invalid_argument("regions must have shape (R, H, W)");
        }
        req.weights = checked_data<float>(weights, "regions");
        req.regions = dim(weights, 0, "regions");
        cells *= req.regions;
    }
    const py::ssize_t expected = static_cast<py::ssize_t>(req.n) * cells * req.c * req.h * req.w;
    if (!(out.flags() & py::array::c_style) || !out.writeable() ||
        !py::isinstance<py::array_t<float>>(out) || out.size() != expected) {
        throw std::invalid_argument(
            "out must be a writeable C-contiguous float32 array of N*K*C*H*W "
            "(N*K*R*C*H*W with regions) elements");
    }
    req.out = static_cast<float*>(out.mutable_data());
    // Every buffer is taken and every Python object stays referenced by this frame, so the core
    // may run without the GIL; the arrays' destructors run after the GIL is back.
    py::gil_scoped_release release;
    freqxfr::mask_bands(req);
}

MaskMode mode_from(const std::string& mode) {
    if (mode == "delete")
        return MaskMode::kDelete;
    if (mode == "keep")
        return MaskMode::kKeep;
    if (mode == "cumulative_delete")
        return MaskMode::kCumulativeDelete;
    if (mode == "cumulative_keep")
        return MaskMode::kCumulativeKeep;
    throw std::invalid_argument("unknown mode " + mode);
}

std::string mode_name(MaskMode mode) {
    switch (mode) {
        case MaskMode::kKeep:
            return "keep";
        case MaskMode::kCumulativeDelete:
            return "cumulative_delete";
        case MaskMode::kCumulativeKeep:
            return "cumulative_keep";
        default:
            return "delete";
    }
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "freqxfr's compiled spectral-masking core (private; use freqxfr.mask_bands)";
    m.def(
        "load_fftw",
        [](const std::string& path) { return std::string(freqxfr::load_fftw(path).version); },
        py::arg("path"),
        "Load libfftw3f from path (once per process); returns FFTW's version string.");
    m.def("fftw_loaded", &freqxfr::fftw_loaded);
    m.def("fftw_library_path", &freqxfr::fftw_library_path);
    using freqxfr::MaskOptions;
    py::class_<MaskOptions>(m, "MaskOptions",
                            "The settings of one mask_bands call (all but the buffers).")
        .def(py::init<>())
        .def_readwrite("bands", &MaskOptions::bands)
        .def_property(
            "mode", [](const MaskOptions& o) { return mode_name(o.mode); },
            [](MaskOptions& o, const std::string& mode) { o.mode = mode_from(mode); })
        .def_readwrite("order", &MaskOptions::order)
        .def_readwrite("normalised_domain", &MaskOptions::normalised_domain)
        .def_readwrite("clip", &MaskOptions::clip)
        .def_readwrite("clip_lo", &MaskOptions::clip_lo)
        .def_readwrite("clip_hi", &MaskOptions::clip_hi)
        .def_readwrite("mean", &MaskOptions::mean)
        .def_readwrite("std", &MaskOptions::stddev)
        .def_readwrite("reverse_channels", &MaskOptions::reverse_channels)
        .def_property(
            "layout",
            [](const MaskOptions& o) { return o.layout == OutputLayout::kNHWC ? "NHWC" : "NCHW"; },
            [](MaskOptions& o, const std::string& layout) {
                if (layout != "NCHW" && layout != "NHWC")
                    throw std::invalid_argument("unknown layout " + layout);
                o.layout = layout == "NHWC" ? OutputLayout::kNHWC : OutputLayout::kNCHW;
            })
        .def_readwrite("threads", &MaskOptions::threads)
        .def_readwrite("planner_flags", &MaskOptions::planner_flags);
    m.def("mask_bands", &mask_bands, py::arg("images"), py::arg("labels"), py::arg("out"),
          py::arg("options"), py::arg("regions") = py::none());
    m.def(
        "c2r_floor_seconds",
        [](int h, int w, int planes, int threads, unsigned flags) {
            py::gil_scoped_release release;  // plain ints only
            return freqxfr::c2r_floor_seconds(h, w, planes, threads, flags);
        },
        py::arg("h"), py::arg("w"), py::arg("planes"), py::arg("threads"),
        py::arg("planner_flags"));
    m.def("export_wisdom", &freqxfr::export_wisdom);
    m.def("import_wisdom", &freqxfr::import_wisdom, py::arg("wisdom"));
    m.attr("PLANNER_FLAGS") = py::dict(py::arg("estimate") = freqxfr::kFftwEstimate,
                                       py::arg("measure") = freqxfr::kFftwMeasure,
                                       py::arg("patient") = freqxfr::kFftwPatient,
                                       py::arg("exhaustive") = freqxfr::kFftwExhaustive);
}
