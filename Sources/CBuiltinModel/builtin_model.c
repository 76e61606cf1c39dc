#include "builtin_model.h"
#include <string.h>

#define DECLARE(symbol) extern const unsigned char symbol##_start[]; extern const unsigned char symbol##_end[];
DECLARE(asr_builtin_config)
DECLARE(asr_builtin_vocab)
DECLARE(asr_builtin_tokenizer_config)
DECLARE(asr_builtin_preprocessor_config)
DECLARE(asr_builtin_training)
DECLARE(asr_builtin_weights)

#define ENTRY(name, symbol) { name, symbol##_start, symbol##_end }
static const struct { const char *name; const unsigned char *start; const unsigned char *end; } files[] = {
    ENTRY("config.json", asr_builtin_config),
    ENTRY("vocab.json", asr_builtin_vocab),
    ENTRY("tokenizer_config.json", asr_builtin_tokenizer_config),
    ENTRY("preprocessor_config.json", asr_builtin_preprocessor_config),
    ENTRY("training.json", asr_builtin_training),
    ENTRY("model.safetensors", asr_builtin_weights),
};

const unsigned char *asr_builtin_model_file(const char *name, size_t *size) {
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (strcmp(files[i].name, name) == 0) {
            *size = (size_t)(files[i].end - files[i].start);
            return files[i].start;
        }
    }
    *size = 0;
    return NULL;
}
