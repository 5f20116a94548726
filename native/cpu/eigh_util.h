// Shared helpers of the eigensolver drivers.
#pragma once
#include <cstdint>
#include <vector>

namespace kfac::cpu::eig {

// max |A[i]| over n values; throws NotFinite (naming `arg`) on NaN or Inf.
double max_abs_checked(int64_t n, const float* A, const char* arg);

// work (n×n, column-major, full) = scale · (A + Aᵀ)/2 for row-major A. T float or double.
template <class T>
void load_symmetric(int64_t n, const float* A, double scale, T* work);

// out (row-major) = Zᵀ of the column-major Z, i.e. out[i][j] = Z(i, j).
void transpose_out(int64_t n, const float* Z, float* out);

// Cold solve of scale·sym(A) (float32, then float64 on failure): w ascending, Zcm
// column-major eigenvectors. False when both fail.
bool solve_scaled(int64_t n, const float* A, double scale, std::vector<double>& w,
                  std::vector<float>& Zcm, bool& retried);

// For tests of the failure paths: 1 makes every float32 cold solve report failure,
// 2 makes the float64 retry fail too, 3 makes every batched solve fail (and nothing else),
// 0 restores normal operation.
void set_fault_injection(int mode);
// The mode set (0 off, 1 float32 solves fail, 2 float64 too, 3 batched solves fail).
int fault_injection();

}  // namespace kfac::cpu::eig
