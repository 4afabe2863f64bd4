// Test harness for the generated TFLite-Micro main.cc, compiled with -DTFLM_APP_NO_MAIN: runs
// tflm_setup() once, then tflm_classify() on each embedded MNIST test image (images.c from
// make_images.py), and prints over semihosting stdout (rdimon), one record per line:
//   setup <status>          tflm_setup()'s return value (0 = ready)
//   arena_used <bytes>      MicroInterpreter::arena_used_bytes() on this core
//   pred <index> <class>    tflm_classify() of image <index> (negative = error)
//   done <count>
// compare.py parses these lines. Returns 0, or 1 when setup or a classification failed.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tensorflow/lite/micro/system_setup.h"

extern "C" {
int tflm_setup(void);
int tflm_classify(const uint8_t* pixels);
size_t tflm_arena_used_bytes(void);
extern const unsigned kNumImages;
extern const uint8_t kImages[][784];
}

int main(void) {
  tflite::InitializeTarget();
  const int status = tflm_setup();
  printf("setup %d\n", status);
  printf("arena_used %u\n", static_cast<unsigned>(tflm_arena_used_bytes()));
  if (status != 0) return 1;
  int failed = 0;
  for (unsigned i = 0; i < kNumImages; ++i) {
    const int label = tflm_classify(kImages[i]);
    printf("pred %u %d\n", i, label);
    if (label < 0) failed = 1;
  }
  printf("done %u\n", kNumImages);
  return failed;
}
