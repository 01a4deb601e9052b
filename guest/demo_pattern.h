/*
 * Demo guest page contents, a pure function of (page frame number, seed).
 * tests/functional/demo_pattern.py recomputes the same bytes.
 *   kind 0, 1: zero page (not written)
 *   kind 2:    text-like page made of words
 *   kind 3:    xorshift64 pseudo-random page
 */
#ifndef MINIVM_DEMO_PATTERN_H
#define MINIVM_DEMO_PATTERN_H

#include <stdint.h>

static inline uint64_t demo_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static inline unsigned demo_page_kind(uint64_t pfn, uint64_t seed)
{
    return demo_mix64(pfn ^ seed) & 3;
}

static const char demo_words[16][8] = {
    "kernel ", "memory ", "dump ", "page ", "crash ", "vmcore ", "guest ", "cpu ",
    "note ", "zlib ", "minivm ", "qemu ", "stack ", "frame ", "panic\n", "load ",
};

static inline void demo_fill_text(uint8_t *page, uint64_t pfn, uint64_t seed)
{
    uint64_t state = demo_mix64(pfn + seed);
    unsigned pos = 0;

    while (pos < 4096) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        const char *w = demo_words[state >> 60];
        for (unsigned i = 0; w[i] && pos < 4096; i++) {
            page[pos++] = (uint8_t)w[i];
        }
    }
}

static inline void demo_fill_random(uint64_t *page, uint64_t pfn, uint64_t seed)
{
    uint64_t x = demo_mix64(pfn ^ ~seed) | 1;

    for (unsigned i = 0; i < 512; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        page[i] = x;
    }
}

#endif
