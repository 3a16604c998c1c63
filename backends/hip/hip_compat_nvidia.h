/*
 * hip_compat_nvidia.h — the subset of the HIP runtime API and kernel syntax
 * that backends/hip uses, mapped onto CUDA, so the same .hip sources build
 * with `nvcc -x cu` (the NVIDIA H100 of the device machine runs them).
 *
 * Why our own header: Debian's HIP headers for NVIDIA (hip/nvidia_detail,
 * HIP 5.2) no longer compile against CUDA 13 (removed cudaDeviceProp fields,
 * changed cudaMemPrefetchAsync). This file names only what the backend
 * calls; anything new the backend uses must be added here, and a build with
 * nvcc tells at once when it is missing.
 *
 * Kernel syntax (__global__, __shared__, __syncthreads, threadIdx, <<< >>>,
 * atomicMin, rintf, __fmul_rn, ...) is the same in HIP and CUDA and needs
 * no mapping. The kernels never rely on the warp width (64 on gfx942, 32
 * here): no shuffles, no warp-synchronous code.
 */
#ifndef GPTQ_HIP_COMPAT_NVIDIA_H
#define GPTQ_HIP_COMPAT_NVIDIA_H

#include <cuda_runtime.h>

#define GPTQ_HIP_ON_NVIDIA 1

/* types and constants */
typedef cudaError_t hipError_t;
typedef cudaStream_t hipStream_t;
typedef cudaDeviceProp hipDeviceProp_t;
#define hipSuccess cudaSuccess
#define hipErrorOutOfMemory cudaErrorMemoryAllocation
#define hipErrorMemoryAllocation cudaErrorMemoryAllocation
#define hipErrorNoDevice cudaErrorNoDevice
#define hipErrorInsufficientDriver cudaErrorInsufficientDriver
#define hipStreamNonBlocking cudaStreamNonBlocking
#define hipMemcpyHostToDevice cudaMemcpyHostToDevice
#define hipMemcpyDeviceToHost cudaMemcpyDeviceToHost
#define hipMemcpyDeviceToDevice cudaMemcpyDeviceToDevice
#define hipFuncAttributeMaxDynamicSharedMemorySize cudaFuncAttributeMaxDynamicSharedMemorySize
#define hipDeviceAttributeMultiprocessorCount cudaDevAttrMultiProcessorCount
#define hipDeviceAttributeMaxSharedMemoryPerBlock cudaDevAttrMaxSharedMemoryPerBlock
#define hipDeviceAttributeSharedMemPerBlockOptin cudaDevAttrMaxSharedMemoryPerBlockOptin

/* errors */
#define hipGetErrorName cudaGetErrorName
#define hipGetErrorString cudaGetErrorString
#define hipGetLastError cudaGetLastError
#define hipPeekAtLastError cudaPeekAtLastError

/* devices */
#define hipGetDeviceCount cudaGetDeviceCount
#define hipSetDevice cudaSetDevice
#define hipGetDevice cudaGetDevice
#define hipGetDeviceProperties cudaGetDeviceProperties
#define hipDeviceGetAttribute cudaDeviceGetAttribute
#define hipDeviceSynchronize cudaDeviceSynchronize
#define hipRuntimeGetVersion cudaRuntimeGetVersion
#define hipDriverGetVersion cudaDriverGetVersion

/* streams */
#define hipStreamCreateWithFlags cudaStreamCreateWithFlags
#define hipStreamDestroy cudaStreamDestroy
#define hipStreamSynchronize cudaStreamSynchronize

/* memory */
#define hipMalloc cudaMalloc
#define hipFree cudaFree
#define hipMemGetInfo cudaMemGetInfo
#define hipMemsetAsync cudaMemsetAsync
#define hipMemcpyAsync cudaMemcpyAsync
#define hipMemcpy2DAsync cudaMemcpy2DAsync

/* kernels */
#define hipFuncSetAttribute(f, a, v) cudaFuncSetAttribute((f), (a), (v))

#endif /* GPTQ_HIP_COMPAT_NVIDIA_H */
