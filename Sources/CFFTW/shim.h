#include <fftw3.h>

/// Planning flags for asr's transforms: no measuring at plan time, and any alignment of the arrays it executes on
/// (each call brings its own buffers to one shared plan).
static const unsigned asr_fftw_flags = FFTW_ESTIMATE | FFTW_UNALIGNED;
