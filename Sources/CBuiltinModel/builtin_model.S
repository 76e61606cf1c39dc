// The built-in model's files, linked into the binary as read-only data so that `asr` finds its model wherever the
// binary is copied. The assembler finds model/ through the target's header search path (Package.swift).
#define EMBED(symbol, file) \
    .global symbol##_start; .global symbol##_end; .balign 64; symbol##_start: .incbin file; symbol##_end: .byte 0

    .section .rodata
EMBED(asr_builtin_config, "model/config.json")
EMBED(asr_builtin_vocab, "model/vocab.json")
EMBED(asr_builtin_tokenizer_config, "model/tokenizer_config.json")
EMBED(asr_builtin_preprocessor_config, "model/preprocessor_config.json")
EMBED(asr_builtin_training, "model/training.json")
EMBED(asr_builtin_weights, "model/model.safetensors")

#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack,"",@progbits
#endif
