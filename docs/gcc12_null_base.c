/* gcc 12.2 deletes a function call: the reduced case of issue 34 (the emulator's host build of a
 * 49x10x1 model lost a whole binary conv and agreed with LCE on 9.40 % of the inputs).
 *
 *   gcc -std=c99 -O2 gcc12_null_base.c && ./a.out                  33ce7c00 (right)
 *   gcc -std=c99 -O3 -mtune=znver3 gcc12_null_base.c && ./a.out    00000000 (layer() never runs)
 *
 * Also wrong with -mtune=znver1 or znver2, or -march=native on an AMD Zen 4 (gcc 12.2 tunes for
 * znver3 there); right with the default tuning, -fno-ivopts, -fno-delete-null-pointer-checks,
 * -fno-tree-loop-vectorize, and with clang 14 at any level. ASan and UBSan report nothing: the C is
 * valid C99 (every access is inside arena[], nothing overflows, nothing is read uninitialized).
 *
 * What gcc does (-fdump-tree-all): layer() is cloned with its two arguments propagated
 * (layer.constprop), so `in` and `out` are both known to point into arena[]. After vectorization,
 * IVOPTs serves the store to `out` (8 bytes per x) from the induction variable of the load from
 * `in` (4 bytes per x): address = 2 * iv - &arena + 128. No term of that sum is a pointer with
 * factor 1, so the store becomes
 *     MEM <vector(2) unsigned int> [(uint32_t *)0B + 128B + _298 + ivtmp.48_283 * 8] = _267;
 * a memory reference whose base is a null pointer and whose address is all in the index. The
 * local-pure-const pass then reads that as a store through a null pointer ("NULL memory access;
 * terminating BB"), skips it, finds layer.constprop pure, and main's call to a pure function that
 * returns nothing is deleted: arena[32..63] keep their zeros.
 *
 * In the generated engine the shape was a binary conv with 16 input channels (one word read per
 * position) and 48 output channels (two words written per position), both buffers in bnn_arena;
 * the vectorized channel-inner form (-DBNN_CHANNEL_INNER -DBNN_POPCOUNT_BUILTIN with AVX-512
 * VPOPCNTDQ) made gcc pick that induction variable. The avoidance: every layer function of
 * bnn_model.c is declared BNN_LAYER, `static __attribute__((noipa))` where the compiler has noipa
 * (bnn_kernels.h): no clone sees the arena offsets, so `in` and `out` are unrelated pointers, and
 * no caller uses what gcc concludes about a layer's body. tests/test_bnn_models.py builds that
 * model under every flag set and checks gcc's optimized GIMPLE for null-based references.
 *
 * The audio front end (firmware_gen/templates/frontend) met it too, with arm-none-eabi-gcc 12.2
 * -O3 for Cortex-M4 and M7: fe_last_stage reads fe_sine[2k] and fe_sine[QUARTER - 2k], IVOPTs makes
 * one of the reads null-based, ipa-pure-const stops scanning the block there, misses the stores to
 * fe.buf and finds the step pure, and fe_fft's call of it is deleted. Its FE_NOINLINE is noipa now.
 */
#include <stdint.h>
#include <stdio.h>

static uint32_t arena[64]; /* in: words 0..23, out: words 32..63 */

static void layer(const uint32_t *in, uint32_t *out)
{
    int y, x, o, w, b;
    for (y = 0; y < 2; ++y) {
        for (x = 0; x < 8; ++x) {
            uint32_t acc[64], copy[64];
            for (o = 0; o < 64; ++o) {
                acc[o] = in[y * 16 + x] + (uint32_t)o;
            }
            for (o = 0; o < 64; ++o) {
                copy[o] = acc[o];
            }
            for (w = 0; w < 2; ++w) {
                uint32_t sum = 0;
                for (b = 0; b < 32; ++b) {
                    sum += copy[32 * w + b];
                }
                out[(y * 8 + x) * 2 + w] = sum; /* 2 words per x, in reads 1 word per x */
            }
        }
    }
}

int main(void)
{
    uint32_t h = 0;
    int i;
    for (i = 0; i < 32; ++i) {
        arena[i] = (uint32_t)i * 2654435761u >> 16;
    }
    layer(arena, arena + 32);
    for (i = 0; i < 32; ++i) {
        h = h * 31u + arena[32 + i];
    }
    printf("%08x\n", h);
    return 0;
}
