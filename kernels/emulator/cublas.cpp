// cuBLAS GemmEx on the CPU: column-major C = alpha * op(A) * op(B) + beta * C with bf16, f16 or f32 inputs and
// float32 accumulation, as Kiln calls it (host-side alpha and beta). With beta 0, C is not read, as in cuBLAS, so
// a poisoned output does not leak into the result.
#include <cstdint>
#include <cstring>
#include <vector>

#include "device.h"

using namespace kiln_emu;

namespace
{
enum : int
{
    Success = 0,
    NotInitialized = 1,
    InvalidValue = 7,
    ExecutionFailed = 13,
    NotSupported = 15,
};

enum : int
{
    F32 = 0,
    F16 = 2,
    BF16 = 14,
};

struct Handle
{
    void* stream = nullptr;
};

bool supported(int type) { return type == F32 || type == F16 || type == BF16; }

float load(const void* data, int type, size_t index)
{
    switch (type)
    {
    case F32: return static_cast<const float*>(data)[index];
    case F16: return half_to_float(static_cast<const uint16_t*>(data)[index]);
    default: return bf16_to_float(static_cast<const uint16_t*>(data)[index]);
    }
}

// op(X) as a dense [rows x depth] float matrix, row-major, so every output is one contiguous dot product.
std::vector<float> operand(const void* x, int type, bool transposed, int rows, int depth, int ld)
{
    std::vector<float> dense((size_t)rows * depth);
    for (int r = 0; r < rows; r++)
        for (int d = 0; d < depth; d++)
            dense[(size_t)r * depth + d] = load(x, type, transposed ? (size_t)d + (size_t)r * ld : (size_t)r + (size_t)d * ld);
    return dense;
}
} // namespace

float kiln_emu::half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    int exponent = (h >> 10) & 0x1f;
    uint32_t mantissa = h & 0x3ff;
    uint32_t bits;
    if (exponent == 0x1f) bits = sign | 0x7f800000u | (mantissa << 13);
    else if (exponent != 0) bits = sign | ((uint32_t)(exponent + 112) << 23) | (mantissa << 13);
    else if (mantissa == 0) bits = sign;
    else
    {
        int shift = 0;
        while (!(mantissa & 0x400)) { mantissa <<= 1; shift++; }
        bits = sign | ((uint32_t)(113 - shift) << 23) | ((mantissa & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t kiln_emu::float_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

extern "C" {
int cublasCreate_v2(void** handle)
{
    *handle = new Handle();
    return Success;
}

int cublasDestroy_v2(void* handle)
{
    delete static_cast<Handle*>(handle);
    return Success;
}

int cublasSetStream_v2(void* handle, void* stream)
{
    if (!handle) return NotInitialized;
    static_cast<Handle*>(handle)->stream = stream;
    return Success;
}

int cublasSetWorkspace_v2(void* handle, void*, size_t) { return handle ? Success : NotInitialized; }

int cublasGemmEx(void* handle, int trans_a, int trans_b, int m, int n, int k, const float* alpha, const void* a, int a_type,
                 int lda, const void* b, int b_type, int ldb, const float* beta, void* c, int c_type, int ldc, int compute_type, int)
{
    if (!handle) return NotInitialized;
    if (m < 0 || n < 0 || k < 0) return InvalidValue;
    if (!supported(a_type) || !supported(b_type) || (c_type != F32 && c_type != BF16) || (compute_type != 68 && compute_type != 0))
        return NotSupported;
    float alpha_value = *alpha;
    float beta_value = *beta;
    int status = submit(static_cast<Handle*>(handle)->stream, [=]() {
        std::vector<float> left = operand(a, a_type, trans_a != 0, m, k, lda);  // [m x k]
        std::vector<float> right = operand(b, b_type, trans_b == 0, n, k, ldb); // [n x k]: op(B) transposed
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++)
            {
                const float* x = &left[(size_t)i * k];
                const float* y = &right[(size_t)j * k];
                float sum = 0.0f;
                for (int l = 0; l < k; l++) sum += x[l] * y[l];
                size_t at = (size_t)i + (size_t)j * ldc;
                float value = alpha_value * sum;
                if (beta_value != 0.0f) value += beta_value * (c_type == F32 ? static_cast<float*>(c)[at] : bf16_to_float(static_cast<uint16_t*>(c)[at]));
                if (c_type == F32) static_cast<float*>(c)[at] = value;
                else static_cast<uint16_t*>(c)[at] = float_to_bf16(value);
            }
        return 0;
    });
    return status == 0 ? Success : ExecutionFailed;
}

const char* cublasGetStatusName(int status)
{
    switch (status)
    {
    case Success: return "CUBLAS_STATUS_SUCCESS";
    case NotInitialized: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case InvalidValue: return "CUBLAS_STATUS_INVALID_VALUE";
    case ExecutionFailed: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case NotSupported: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_INTERNAL_ERROR";
    }
}
}
