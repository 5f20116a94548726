/**
 * kfac-peft: second-order (K-FAC with Newton-step clipping) parameter-efficient
 * fine-tuning for Node.js. The single public entry point.
 */
export { Tensor } from './tensor/tensor.js';
export type { DType, Device, NestedArray, RandnOptions, RandOptions } from './tensor/tensor.js';
export { DeviceValue } from './tensor/device-value.js';
export * as linalg from './linalg/index.js';
export * as kfac from './kfac/index.js';
export * as ops from './ops/index.js';
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export * as io from './io/index.js';
export * as models from './models/index.js';
export * as peft from './peft/index.js';
export * as demo from './demo/index.js';
export { info, setNumThreads, setCpuKernel, setBackend, releaseCachedMemory, setHostCacheLimit, setBf16Kernel, bf16Kernels } from './runtime.js';
export type { RuntimeInfo, CpuKernel, Backend, Bf16Kernel } from './runtime.js';
export * as cuda from './cuda/index.js';
export {
  KfacError,
  InvalidArgumentError,
  ShapeError,
  DTypeError,
  DeviceError,
  DisposedError,
  NotFiniteError,
  OutOfMemoryError,
  NumericalError,
  InternalError,
  NativeLoadError,
  FormatError,
  ConfigError,
  FileError,
} from './errors.js';
export type { KfacErrorDetails } from './errors.js';
export { VERSION } from './version.js';
