// cuda_shim.h — lets g++ syntax/type-check Kiln's NVRTC kernel sources on a
// machine with no CUDA toolkit. Used by kernels/tools/check-kernels.sh via
//   g++ -std=c++17 -fsyntax-only -nostdinc -include kernels/tools/cuda_shim.h -x c++ K.cu
//
// Only declarations that type-check matter here; nothing is ever executed.
// Goal: accept what NVRTC accepts with NO #include, reject what it rejects.
//   * <cstdint> types (uint32_t, int64_t, ...) are deliberately NOT defined:
//     NVRTC does not predefine them, so a kernel using them must fail here.
//   * INFINITY is NOT defined by default either: NVRTC has no math.h, so a bare
//     INFINITY fails there. Write __int_as_float(0x7f800000) (or define
//     INFINITY yourself in the .cu). -DKILN_SHIM_INFINITY lifts this.
//   * No standard headers are reachable (the script passes -nostdinc).
#ifndef KILN_CUDA_SHIM_H
#define KILN_CUDA_SHIM_H

// ---- macros NVRTC predefines -------------------------------------------------
#ifndef __CUDACC__
#define __CUDACC__ 1
#endif
#ifndef __CUDACC_RTC__
#define __CUDACC_RTC__ 1
#endif
#ifndef __CUDA_ARCH__
#define __CUDA_ARCH__ 900
#endif

// ---- execution-space / storage qualifiers -------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __shared__
#define __managed__
#define __noinline__ __attribute__((noinline))
#define __forceinline__ inline __attribute__((always_inline))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
// __restrict__ is already a GNU C++ keyword.

// size_t is available under NVRTC without headers.
typedef __SIZE_TYPE__ size_t;
typedef __PTRDIFF_TYPE__ ptrdiff_t;

// ---- vector types ---------------------------------------------------------------
struct __align__(4)  char4   { signed char x, y, z, w; };
struct __align__(4)  uchar4  { unsigned char x, y, z, w; };
struct __align__(4)  ushort2 { unsigned short x, y; };
struct __align__(8)  ushort4 { unsigned short x, y, z, w; };
struct __align__(8)  int2    { int x, y; };
struct               int3    { int x, y, z; };
struct __align__(16) int4    { int x, y, z, w; };
struct __align__(8)  uint2   { unsigned int x, y; };
struct               uint3   { unsigned int x, y, z; };
struct __align__(16) uint4   { unsigned int x, y, z, w; };
struct __align__(8)  float2  { float x, y; };
struct               float3  { float x, y, z; };
struct __align__(16) float4  { float x, y, z, w; };
struct __align__(16) double2 { double x, y; };
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
};

static inline int2    make_int2(int x, int y) { return {x, y}; }
static inline int3    make_int3(int x, int y, int z) { return {x, y, z}; }
static inline int4    make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
static inline uint2   make_uint2(unsigned x, unsigned y) { return {x, y}; }
static inline uint3   make_uint3(unsigned x, unsigned y, unsigned z) { return {x, y, z}; }
static inline uint4   make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
static inline float2  make_float2(float x, float y) { return {x, y}; }
static inline float3  make_float3(float x, float y, float z) { return {x, y, z}; }
static inline float4  make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
static inline double2 make_double2(double x, double y) { return {x, y}; }

// ---- built-in variables -----------------------------------------------------------
extern const uint3 threadIdx;
extern const uint3 blockIdx;
extern const dim3  blockDim;
extern const dim3  gridDim;
extern const int   warpSize;

// ---- synchronisation / warp primitives -----------------------------------------------
void __syncthreads();
int  __syncthreads_count(int);
int  __syncthreads_and(int);
int  __syncthreads_or(int);
void __syncwarp(unsigned int mask = 0xffffffffu);
void __threadfence();
void __threadfence_block();
unsigned int __activemask();
unsigned int __ballot_sync(unsigned int mask, int pred);
int __any_sync(unsigned int mask, int pred);
int __all_sync(unsigned int mask, int pred);
// CUDA overloads these for int/unsigned/long long/float/double (and half types).
template <class T> T __shfl_sync(unsigned int mask, T var, int srcLane, int width = 32);
template <class T> T __shfl_xor_sync(unsigned int mask, T var, int laneMask, int width = 32);
template <class T> T __shfl_down_sync(unsigned int mask, T var, unsigned int delta, int width = 32);
template <class T> T __shfl_up_sync(unsigned int mask, T var, unsigned int delta, int width = 32);
template <class T> T __ldg(const T* ptr);
long long clock64();
int clock();

// ---- atomics ---------------------------------------------------------------------
int                atomicAdd(int*, int);
unsigned int       atomicAdd(unsigned int*, unsigned int);
unsigned long long atomicAdd(unsigned long long*, unsigned long long);
float              atomicAdd(float*, float);
double             atomicAdd(double*, double);
int                atomicSub(int*, int);
unsigned int       atomicSub(unsigned int*, unsigned int);
int                atomicMax(int*, int);
unsigned int       atomicMax(unsigned int*, unsigned int);
long long          atomicMax(long long*, long long);
unsigned long long atomicMax(unsigned long long*, unsigned long long);
int                atomicMin(int*, int);
unsigned int       atomicMin(unsigned int*, unsigned int);
long long          atomicMin(long long*, long long);
unsigned long long atomicMin(unsigned long long*, unsigned long long);
int                atomicExch(int*, int);
unsigned int       atomicExch(unsigned int*, unsigned int);
unsigned long long atomicExch(unsigned long long*, unsigned long long);
float              atomicExch(float*, float);
int                atomicCAS(int*, int, int);
unsigned int       atomicCAS(unsigned int*, unsigned int, unsigned int);
unsigned long long atomicCAS(unsigned long long*, unsigned long long, unsigned long long);
unsigned int       atomicInc(unsigned int*, unsigned int);
int                atomicAnd(int*, int);
unsigned int       atomicAnd(unsigned int*, unsigned int);
int                atomicOr(int*, int);
unsigned int       atomicOr(unsigned int*, unsigned int);

// ---- bit casts / conversions / integer intrinsics ----------------------------------
constexpr unsigned int __float_as_uint(float x) { return __builtin_bit_cast(unsigned int, x); }
constexpr float        __uint_as_float(unsigned int x) { return __builtin_bit_cast(float, x); }
constexpr int          __float_as_int(float x) { return __builtin_bit_cast(int, x); }
constexpr float        __int_as_float(int x) { return __builtin_bit_cast(float, x); }
constexpr long long    __double_as_longlong(double x) { return __builtin_bit_cast(long long, x); }
constexpr double       __longlong_as_double(long long x) { return __builtin_bit_cast(double, x); }
int      __float2int_rn(float);
int      __float2int_rz(float);
unsigned __float2uint_rn(float);
float    __int2float_rn(int);
float    __uint2float_rn(unsigned int);
int      __popc(unsigned int);
int      __popcll(unsigned long long);
int      __clz(int);
int      __clzll(long long);
int      __ffs(int);
int      __ffsll(long long);
unsigned __brev(unsigned int);
unsigned __byte_perm(unsigned int, unsigned int, unsigned int);
unsigned __umulhi(unsigned int, unsigned int);
int      __mulhi(int, int);
unsigned __funnelshift_l(unsigned int, unsigned int, unsigned int);
unsigned __funnelshift_r(unsigned int, unsigned int, unsigned int);

// ---- float math (NVRTC provides these without headers) ------------------------------
extern "C" {
float expf(float);   float exp2f(float);  float logf(float);   float log2f(float);
float sqrtf(float);  float powf(float, float); float tanhf(float); float erff(float);
float sinf(float);   float cosf(float);   float tanf(float);   float fabsf(float);
float fmaxf(float, float); float fminf(float, float); float fmaf(float, float, float);
float floorf(float); float ceilf(float);  float truncf(float); float roundf(float);
float rintf(float);  float copysignf(float, float); float fmodf(float, float);
void  sincosf(float, float*, float*);
double exp(double);  double log(double);  double sqrt(double); double pow(double, double);
double sin(double);  double cos(double);  double fabs(double); double floor(double);
double ceil(double); double fma(double, double, double); double fmax(double, double);
double fmin(double, double); double tanh(double);
void   sincos(double, double*, double*);
}
float rsqrtf(float);   double rsqrt(double);
float __expf(float);   float __exp10f(float); float __logf(float); float __log2f(float);
float __powf(float, float); float __sinf(float); float __cosf(float); float __tanf(float);
void  __sincosf(float, float*, float*);
float __fdividef(float, float);
float __frcp_rn(float); float __fsqrt_rn(float); float __saturatef(float);
float __fmaf_rn(float, float, float); float __fmul_rn(float, float); float __fadd_rn(float, float);
float __fsub_rn(float, float); float __fdiv_rn(float, float);
double __fma_rn(double, double, double);
bool isinf(float);  bool isinf(double);
bool isnan(float);  bool isnan(double);
bool isfinite(float); bool isfinite(double);

// ---- min / max (CUDA's overload set, including the mixed signed/unsigned ones) ------
int                min(int, int);
unsigned int       min(unsigned int, unsigned int);
unsigned int       min(int, unsigned int);
unsigned int       min(unsigned int, int);
long long          min(long long, long long);
unsigned long long min(unsigned long long, unsigned long long);
float              min(float, float);
double             min(double, double);
double             min(float, double);
double             min(double, float);
int                max(int, int);
unsigned int       max(unsigned int, unsigned int);
unsigned int       max(int, unsigned int);
unsigned int       max(unsigned int, int);
long long          max(long long, long long);
unsigned long long max(unsigned long long, unsigned long long);
float              max(float, float);
double             max(double, double);
double             max(float, double);
double             max(double, float);

#ifdef KILN_SHIM_INFINITY
#define INFINITY __builtin_inff()
#endif

#endif // KILN_CUDA_SHIM_H
