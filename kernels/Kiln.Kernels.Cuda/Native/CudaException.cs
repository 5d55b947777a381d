namespace Kiln.Kernels.Cuda.Native;

/// <summary>A CUDA, NVRTC, cuBLAS or NCCL call failed; the message names the call and the library's own status name.</summary>
public sealed class CudaException : Exception
{
    public CudaException(string message)
        : base(message)
    {
    }

    public CudaException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public CudaException()
    {
    }
}

/// <summary>No usable NVIDIA GPU or CUDA driver here: the CUDA backend cannot start. The message says what is missing.</summary>
public sealed class CudaUnavailableException : Exception
{
    public CudaUnavailableException(string message)
        : base(message)
    {
    }

    public CudaUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public CudaUnavailableException()
    {
    }
}
