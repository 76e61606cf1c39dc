// OpenBLAS's CBLAS interface. Debian keeps the header under openblas-pthread/, which the openblas pkg-config
// file puts on the include path; other layouts have it directly on the path.
#include <cblas.h>

// Re-selecting OpenBLAS's kernel at run time. Debian builds OpenBLAS with DYNAMIC_ARCH: a constructor picks the
// kernel from the CPU model when the library loads, and an older OpenBLAS falls back to slow SSE3 ("Prescott")
// kernels on CPUs newer than itself. These two entry points of the dynamic build let us redo that choice once
// OPENBLAS_CORETYPE names the right kernel. They are declared weak: a non-dynamic OpenBLAS lacks them.
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

/// Returns 1 when the library could re-select its kernel (the dynamic-arch entry points exist), else 0.
static inline int asr_openblas_reselect_kernel(void) {
    if (!gotoblas_dynamic_init || !gotoblas_dynamic_quit) return 0;
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    return 1;
}
