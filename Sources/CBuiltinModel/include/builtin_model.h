#ifndef ASR_BUILTIN_MODEL_H
#define ASR_BUILTIN_MODEL_H
#include <stddef.h>

/// The bytes of one file of the built-in model ("config.json", "model.safetensors", ...), or NULL when the model
/// has no such file. The memory lives as long as the process.
const unsigned char *asr_builtin_model_file(const char *name, size_t *size);

#endif
