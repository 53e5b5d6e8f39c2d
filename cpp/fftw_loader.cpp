#include "fftw_api.hpp"

#include <dlfcn.h>

#include <atomic>
#include <mutex>
#include <stdexcept>

namespace freqxfr {
namespace {

std::mutex g_load_mutex;
FftwApi g_api;
// Read without the lock by fftw() on every call; written once, after g_api, with release order.
std::atomic<bool> g_loaded{false};
std::string g_path;

template <typename Fn>
void resolve(void* handle, const char* name, Fn& slot) {
    void* sym = dlsym(handle, name);
    if (sym == nullptr) {
        throw std::runtime_error(std::string("libfftw3f lacks symbol ") + name);
    }
    slot = reinterpret_cast<Fn>(sym);
}

}  // namespace

const FftwApi& load_fftw(const std::string& path) {
    std::lock_guard<std::mutex> lock(g_load_mutex);
    if (g_loaded) {
        return g_api;  // one FFTW per process: plans and wisdom belong to the first library
    }
    // RTLD_LOCAL keeps these symbols away from any other FFTW that the process may load.
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
        const char* err = dlerror();
        throw std::runtime_error("cannot load FFTW from " + path + ": " + (err ? err : "unknown"));
    }
    FftwApi api;
    resolve(handle, "fftwf_plan_dft_r2c_2d", api.plan_dft_r2c_2d);
    resolve(handle, "fftwf_plan_dft_c2r_2d", api.plan_dft_c2r_2d);
    resolve(handle, "fftwf_plan_guru_dft", api.plan_guru_dft);
    resolve(handle, "fftwf_plan_guru_dft_c2r", api.plan_guru_dft_c2r);
    resolve(handle, "fftwf_execute_dft_r2c", api.execute_dft_r2c);
    resolve(handle, "fftwf_execute_dft_c2r", api.execute_dft_c2r);
    resolve(handle, "fftwf_execute_dft", api.execute_dft);
    resolve(handle, "fftwf_destroy_plan", api.destroy_plan);
    resolve(handle, "fftwf_export_wisdom_to_string", api.export_wisdom_to_string);
    resolve(handle, "fftwf_import_wisdom_from_string", api.import_wisdom_from_string);
    resolve(handle, "fftwf_set_timelimit", api.set_timelimit);
    void* version = dlsym(handle, "fftwf_version");
    api.version = version ? static_cast<const char*>(version) : "unknown";
    g_api = api;
    g_loaded.store(true, std::memory_order_release);
    g_path = path;
    return g_api;
}

const FftwApi& fftw() {
    if (!g_loaded.load(std::memory_order_acquire)) {
        throw std::runtime_error("FFTW is not loaded; call freqxfr._core.load_fftw(path) first");
    }
    return g_api;
}

bool fftw_loaded() {
    std::lock_guard<std::mutex> lock(g_load_mutex);
    return g_loaded.load();
}

std::string fftw_library_path() {
    std::lock_guard<std::mutex> lock(g_load_mutex);
    return g_path;
}

}  // namespace freqxfr
