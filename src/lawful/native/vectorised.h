/* VECTORISED: a function compiled twice, for AVX2 and for the baseline, the clone chosen at load
 * time where the CPU has AVX2 (GCC and Clang on x86-64; elsewhere one plain version). No
 * -march=native: the cache may serve machines of one architecture but many CPUs. */
#ifndef LAWFUL_VECTORISED_H
#define LAWFUL_VECTORISED_H

#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define VECTORISED __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef VECTORISED
#define VECTORISED
#endif

#endif
