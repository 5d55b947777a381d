/* Compiles one CUDA C++ file with NVRTC, loaded at run time, and prints NVRTC's log (ptxas's too, given -Xptxas -v).
 * The kernel checks build it with the system C compiler: NVRTC ships no command-line front end of its own.
 * Usage: nvrtc_compile LIBNVRTC SOURCE [NVRTC OPTIONS...]
 * Exit:  0 compiled, 1 NVRTC refused the source, 2 the library or the source could not be opened. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef int (*version_fn)(int*, int*);
typedef int (*create_fn)(void**, const char*, const char*, int, const char* const*, const char* const*);
typedef int (*compile_fn)(void*, int, const char* const*);
typedef int (*log_size_fn)(void*, size_t*);
typedef int (*log_fn)(void*, char*);

int main(int argc, char** argv)
{
    if (argc < 3) { fprintf(stderr, "usage: %s LIBNVRTC SOURCE [OPTIONS...]\n", argv[0]); return 2; }
    void* nvrtc = dlopen(argv[1], RTLD_NOW);
    if (!nvrtc) { fprintf(stderr, "cannot load %s: %s\n", argv[1], dlerror()); return 2; }
    FILE* file = fopen(argv[2], "rb");
    if (!file) { perror(argv[2]); return 2; }
    fseek(file, 0, SEEK_END);
    long length = ftell(file);
    fseek(file, 0, SEEK_SET);
    char* source = malloc((size_t)length + 1);
    if (!source || fread(source, 1, (size_t)length, file) != (size_t)length) { fprintf(stderr, "cannot read %s\n", argv[2]); return 2; }
    source[length] = 0;
    fclose(file);

    int major = 0, minor = 0;
    ((version_fn)dlsym(nvrtc, "nvrtcVersion"))(&major, &minor);
    printf("nvrtc %d.%d\n", major, minor);
    void* program;
    if (((create_fn)dlsym(nvrtc, "nvrtcCreateProgram"))(&program, source, "kiln_kernels.cu", 0, NULL, NULL) != 0) return 2;
    int status = ((compile_fn)dlsym(nvrtc, "nvrtcCompileProgram"))(program, argc - 3, (const char* const*)argv + 3);
    size_t size = 0;
    ((log_size_fn)dlsym(nvrtc, "nvrtcGetProgramLogSize"))(program, &size);
    char* log = malloc(size + 1);
    if (log && ((log_fn)dlsym(nvrtc, "nvrtcGetProgramLog"))(program, log) == 0)
    {
        log[size] = 0;
        fputs(log, stdout);
    }
    return status == 0 ? 0 : 1;
}
