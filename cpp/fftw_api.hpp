// The few FFTW single-precision entry points the core uses, resolved at run time.
//
// We declare them ourselves and load libfftw3f with dlopen (from pyfftw's wheel or the system), so
// the wheel neither links nor vendors any FFTW binary or header: FFTW stays GPL-2.0+ on the user's
// side and our own code keeps its licence. The declarations follow FFTW's documented ABI.
#pragma once

#include <cstddef>
#include <string>

namespace freqxfr {

using fftwf_complex = float[2];
struct fftwf_plan_s;
using fftwf_plan = fftwf_plan_s*;

struct FftwIoDim {  // fftw_iodim
    int n;
    int is;
    int os;
};

// FFTW's planner flags (fftw3.h).
constexpr unsigned kFftwMeasure = 0U;
constexpr unsigned kFftwDestroyInput = 1U << 0;
constexpr unsigned kFftwExhaustive = 1U << 3;
constexpr unsigned kFftwPatient = 1U << 5;
constexpr unsigned kFftwEstimate = 1U << 6;
constexpr int kFftwBackward = +1;

struct FftwApi {
    fftwf_plan (*plan_dft_r2c_2d)(int, int, float*, fftwf_complex*, unsigned) = nullptr;
    fftwf_plan (*plan_dft_c2r_2d)(int, int, fftwf_complex*, float*, unsigned) = nullptr;
    fftwf_plan (*plan_guru_dft)(int, const FftwIoDim*, int, const FftwIoDim*, fftwf_complex*,
                                fftwf_complex*, int, unsigned) = nullptr;
    fftwf_plan (*plan_guru_dft_c2r)(int, const FftwIoDim*, int, const FftwIoDim*, fftwf_complex*,
                                    float*, unsigned) = nullptr;
    void (*execute_dft_r2c)(const fftwf_plan, float*, fftwf_complex*) = nullptr;
    void (*execute_dft_c2r)(const fftwf_plan, fftwf_complex*, float*) = nullptr;
    void (*execute_dft)(const fftwf_plan, fftwf_complex*, fftwf_complex*) = nullptr;
    void (*destroy_plan)(fftwf_plan) = nullptr;
    char* (*export_wisdom_to_string)() = nullptr;
    int (*import_wisdom_from_string)(const char*) = nullptr;
    void (*set_timelimit)(double) = nullptr;
    const char* version = nullptr;  // fftwf_version, a string constant in the library
};

// Loads libfftw3f from `path` once per process. Later calls return the library loaded first and
// ignore their path (plans and wisdom belong to that library). Throws std::runtime_error with
// dlerror's text when the library or a symbol is missing.
const FftwApi& load_fftw(const std::string& path);
// The loaded API; throws std::runtime_error if load_fftw has not succeeded yet.
const FftwApi& fftw();
bool fftw_loaded();
std::string fftw_library_path();

}  // namespace freqxfr
