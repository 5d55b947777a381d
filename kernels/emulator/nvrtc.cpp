// NVRTC on the CPU: "compiling" builds the kernel source into a shared library with g++ (or $CXX), with
// kiln_emu_kernel.h force-included, and hands its bytes back as the cubin. The kernels are found by preprocessing
// the source with __global__ marked and exported by name (KILN_EMU_EXPORT), so the emulated driver finds them.
// Only -D and -U options reach g++; the architecture and dialect options are NVRTC's own.
#include <dlfcn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace
{
enum : int
{
    Success = 0,
    OutOfMemory = 1,
    InvalidInput = 3,
    InvalidProgram = 4,
    Compilation = 6,
    InternalError = 11,
};

struct Program
{
    std::string source;
    std::string log;
    std::vector<char> binary;
};

std::string quote(const std::string& text)
{
    std::string quoted = "'";
    for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return quoted + "'";
}

std::string read_file(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// The folder of this library: kiln_emu_kernel.h sits beside it.
std::string own_folder()
{
    Dl_info info{};
    dladdr((void*)&own_folder, &info);
    std::string path = info.dli_fname ? info.dli_fname : "";
    size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}

int run(const std::string& command) // 0 when the command succeeded
{
    int status = system(command.c_str());
    return status == 0 ? 0 : (WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

int compile(Program& program, const std::vector<std::string>& defines)
{
    char folder[] = "/tmp/kiln-emu-nvrtc-XXXXXX";
    if (!mkdtemp(folder)) return InternalError;
    std::string work = folder;
    std::string header = own_folder() + "/kiln_emu_kernel.h";
    const char* configured = getenv("CXX");
    std::string compiler = configured && *configured ? configured : "g++";
    std::string flags;
    for (const std::string& d : defines) flags += " " + quote(d);
    {
        std::ofstream(work + "/kernels.cu") << program.source;
    }

    // Find the kernels: the preprocessed source with __global__ marked and launch bounds dropped.
    int status = run(compiler + " -E -P -x c++ -D__global__=KILN_EMU_GLOBAL '-D__launch_bounds__(...)='" + flags + " " +
                     quote(work + "/kernels.cu") + " -o " + quote(work + "/kernels.i") + " 2> " + quote(work + "/log"));
    std::set<std::string> kernels;
    if (status == 0)
    {
        std::string text = read_file(work + "/kernels.i");
        std::regex global(R"(KILN_EMU_GLOBAL\s+void\s+(\w+)\s*\()");
        for (auto it = std::sregex_iterator(text.begin(), text.end(), global); it != std::sregex_iterator(); ++it)
            kernels.insert((*it)[1].str());
        std::ofstream unit(work + "/unit.cpp");
        unit << "#include \"kernels.cu\"\n";
        for (const std::string& name : kernels) unit << "KILN_EMU_EXPORT(" << name << ")\n";
        unit.close();
        status = run(compiler + " -std=c++17 -O2 -fPIC -shared -fvisibility=hidden -fno-strict-aliasing -include " + quote(header) +
                     flags + " " + quote(work + "/unit.cpp") + " -o " + quote(work + "/kernels.so") + " 2>> " + quote(work + "/log"));
    }
    program.log = read_file(work + "/log");
    if (status == 0)
    {
        std::string binary = read_file(work + "/kernels.so");
        program.binary.assign(binary.begin(), binary.end());
    }
    run("rm -rf " + quote(work));
    return status == 0 && !program.binary.empty() ? Success : Compilation;
}
} // namespace

extern "C" {
int nvrtcVersion(int* major, int* minor)
{
    *major = 0; // not a real NVRTC: the kernel cache key keeps emulated and real binaries apart
    *minor = 2; // the kernel ABI's version (kernel_abi.h): a new one keeps modules built for the old out of use
    return Success;
}

int nvrtcCreateProgram(void** program, const char* source, const char*, int, const char* const*, const char* const*)
{
    if (!source) return InvalidInput;
    *program = new Program{source, "", {}};
    return Success;
}

int nvrtcCompileProgram(void* program, int option_count, const char* const* options)
{
    auto* p = static_cast<Program*>(program);
    if (!p) return InvalidProgram;
    std::vector<std::string> defines;
    for (int i = 0; i < option_count; i++)
        if (strncmp(options[i], "-D", 2) == 0 || strncmp(options[i], "-U", 2) == 0) defines.emplace_back(options[i]);
    return compile(*p, defines);
}

int nvrtcGetProgramLogSize(void* program, size_t* size)
{
    *size = static_cast<Program*>(program)->log.size() + 1;
    return Success;
}

int nvrtcGetProgramLog(void* program, char* log)
{
    const std::string& text = static_cast<Program*>(program)->log;
    memcpy(log, text.c_str(), text.size() + 1);
    return Success;
}

int nvrtcGetCUBINSize(void* program, size_t* size)
{
    *size = static_cast<Program*>(program)->binary.size();
    return Success;
}

int nvrtcGetCUBIN(void* program, char* cubin)
{
    const std::vector<char>& binary = static_cast<Program*>(program)->binary;
    memcpy(cubin, binary.data(), binary.size());
    return Success;
}

int nvrtcDestroyProgram(void** program)
{
    delete static_cast<Program*>(*program);
    *program = nullptr;
    return Success;
}

const char* nvrtcGetErrorString(int status)
{
    switch (status)
    {
    case Success: return "NVRTC_SUCCESS";
    case OutOfMemory: return "NVRTC_ERROR_OUT_OF_MEMORY";
    case InvalidInput: return "NVRTC_ERROR_INVALID_INPUT";
    case InvalidProgram: return "NVRTC_ERROR_INVALID_PROGRAM";
    case Compilation: return "NVRTC_ERROR_COMPILATION";
    default: return "NVRTC_ERROR_INTERNAL_ERROR";
    }
}
}
