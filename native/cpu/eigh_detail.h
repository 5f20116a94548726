// Internal pieces of the symmetric eigensolvers (not part of the op list).
// Every routine here works on COLUMN-MAJOR storage (LAPACK's convention): element
// (i, j) of a matrix with leading dimension ld is at X[i + j*ld]. A symmetric matrix
// stored row-major is the same bytes, so the drivers reinterpret freely; eigenvector
// matrices are transposed once on the way out. T is float or double.
#pragma once
#include <cstdint>

namespace kfac::cpu::eig {

// C[M×N] = alpha·op(A)·op(B) + beta·C, column-major. float goes to sgemm, double to a
// simple blocked loop (the double path is the fallback and the test reference).
template <class T>
void gemm_cm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
             int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Vector kernels (vectorised for float on AVX2/FMA CPUs).
float dot(int64_t n, const float* x, const float* y);
double dot(int64_t n, const double* x, const double* y);
void axpy(int64_t n, float a, const float* x, float* y);  // y += a·x
void axpy(int64_t n, double a, const double* x, double* y);

// y[0:m] = A·x for the symmetric m×m matrix whose LOWER triangle is stored at A (ld).
// Parallel over the pool when m is large.
template <class T>
void symv_lower(int64_t m, const T* A, int64_t ld, const T* x, T* y);

// Householder reduction of the symmetric n×n matrix A (lower triangle, ld) to
// tridiagonal form T = Qᵀ A Q, Q = H_0 H_1 … H_{n-2}, H_i = I − tau_i v_i v_iᵀ.
// Out: d[n] (diagonal), e[n-1] (sub-diagonal), tau[n-1]; v_i is stored below the
// sub-diagonal of column i of A (its leading 1 at row i+1 is implicit).
template <class T>
void tridiagonalize(int64_t n, T* A, int64_t ld, T* d, T* e, T* tau);

// Z[n×ncols] ← Q·Z with Q from tridiagonalize (blocked compact WY through gemm_cm).
template <class T>
void apply_q(int64_t n, const T* A, int64_t ld, const T* tau, T* Z, int64_t ldz, int64_t ncols);

// Eigen-decomposition of the symmetric tridiagonal matrix (d[n], e[n-1]) by divide and
// conquer: on return d holds the eigenvalues ascending and Z (n×n, ldz) the
// eigenvectors in columns. e is destroyed. Returns false when an iteration did not
// converge (the caller retries in double).
template <class T>
bool tridiag_eigh(int64_t n, double* d, double* e, T* Z, int64_t ldz);

// Cyclic Jacobi on the symmetric n×n matrix S (row-major, full storage, double,
// overwritten; its diagonal ends up holding the eigenvalues, unsorted). Vt (n×n,
// row-major) is multiplied from the left by every rotation, so its rows are the
// eigenvectors when it starts as the identity. Pairs with |S_pq| <= skip are left alone.
// Converged when the off-diagonal Frobenius norm is <= tol·‖S‖_F or a sweep found nothing
// above `skip`; gives up (false) after max_sweeps or beyond max_rotations rotations.
struct JacobiStats {
  int sweeps = 0;
  int64_t rotations = 0;
};
bool jacobi_sweeps(int64_t n, double* S, double* Vt, double tol, double skip, int max_sweeps,
                   int64_t max_rotations, JacobiStats& st);

}  // namespace kfac::cpu::eig
